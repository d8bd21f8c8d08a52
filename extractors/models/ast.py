"""Audio Spectrogram Transformer (AudioSet): the unimodal audio baseline. No instruction.

Per layer, the mean over its time-frequency patch tokens (the [CLS] and distillation tokens included).
"""
from ._base import EncoderAdapter, _token_means, torch_dtype


class Adapter(EncoderAdapter):
    modality = "audio"
    default_frames = 0

    def load(self):
        from transformers import ASTFeatureExtractor, ASTModel

        self.processor = self._from_pretrained(ASTFeatureExtractor)
        self.model = self._from_pretrained(ASTModel, dtype=torch_dtype(self.dtype_name)).to(self.device).eval()
        return self

    def layer_features(self, clip):
        inputs = self.processor(clip.audio, sampling_rate=16000, return_tensors="pt")
        out = self.model(**self._to_device(dict(inputs)), output_hidden_states=True)
        return _token_means(out.hidden_states)
