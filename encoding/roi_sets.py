"""Which ROIs an analysis summarises: a built-in atlas, a user atlas, parcels, or parcels grouped into networks.

``rois.atlas`` takes:

- ``auto``: the built-in atlas of the data's space (``encoding.rois.AUTO_ATLAS``: the Glasser groups on
  fsLR-32k, Seitzman et al.'s networks on MNI152 volumes and fsaverage meshes), each parcel its own ROI
  for parcel arrays;
- a built-in name (``encoding.rois.BUILTIN_ATLASES``);
- ``parcels``: each target its own ROI, named by ``rois.names`` (a list or a file);
- a label file (.annot, .label.gii, .dlabel.nii, NIfTI with ``rois.lut``), or a left/right pair;
- a YAML/JSON/CSV/TSV file grouping targets into ROIs: ROI (network) -> parcels, or parcel -> network,
  parcels given by target index or by name (``encoding.rois._networks``).

``rois.networks`` (the same kind of file) groups the ROIs of ``parcels`` or of a label atlas into networks
without merging them: the layer x ROI heatmap orders ROIs by network and the terminal table summarises
per network. Built-in sphere and parcel atlases, and Schaefer-style parcel names, bring their networks.

:func:`check_rois` checks all of this against the first run of each subject from its headers, before any
run is loaded.
"""
import logging
import re
from pathlib import Path

from features.errors import InputError

from .fmri import peek_space
from .rois import (AUTO_ATLAS, BUILTIN_ATLASES, atlas_advice, builtin_networks, builtin_rois, check_builtin,
                   drop_empty, load_atlas, networks_from_names, parcel_rois, read_names, read_networks)

log = logging.getLogger(__name__)
#: the config's fields the ROI sets read (``encoding.config.fields``; the planner's include them)
ROI_FIELDS = ("rois", "subjects", "config_file")
ATLAS_CHOICES = ("auto", *BUILTIN_ATLASES, "parcels", "<path to .annot/.label.gii/.dlabel.nii/NIfTI labels>",
                 "<path to a YAML/JSON/CSV/TSV file grouping targets (parcels) into ROIs or networks>")
GROUP_FILES = (".yaml", ".yml", ".json", ".csv", ".tsv")


def _spec(config):
    spec = config["rois"] or {}
    return spec if isinstance(spec, dict) else {"atlas": spec}


def _atlas_name(spec, space_kind, where, source):
    """The atlas to use: ``auto`` resolved for the space."""
    atlas = spec.get("atlas", "auto")
    if atlas != "auto":
        return atlas
    if space_kind == "parcels":
        return "parcels"
    if space_kind in AUTO_ATLAS:
        return AUTO_ATLAS[space_kind]
    raise InputError(f"{where}: field 'rois.atlas' is 'auto', but {source} is {space_kind}; "
                     f"{atlas_advice(space_kind)}")


def rois_for_subject(config, data):
    """ROI name -> target indices for one subject's space, without ROIs that have no valid target.

    Returns
    -------
    rois : dict
    dropped : list of ROI names that had no valid targets
    """
    spec, where, space = _spec(config), config["config_file"], data.space
    atlas = _atlas_name(spec, space.kind, where, data.files[0])       # its files resolved by load_config
    if isinstance(atlas, str) and atlas in BUILTIN_ATLASES:
        rois, _ = builtin_rois(atlas, space, where)
    elif atlas == "parcels":
        rois = parcel_rois(space.n_targets, parcel_names(config, space.n_targets, space))
    elif isinstance(atlas, str) and atlas.lower().endswith(GROUP_FILES):
        rois = read_networks(Path(atlas), parcel_names(config, space.n_targets, space))
    else:
        path = {k: Path(v) for k, v in atlas.items()} if isinstance(atlas, dict) else Path(atlas)
        lut = spec.get("lut")
        rois = load_atlas(path, n_targets=space.n_targets, masker=space.masker, lut=Path(lut) if lut else None)
    rois, dropped = drop_empty(rois, data.valid)
    log.info("%s: %d ROIs from atlas %s", data.subject, len(rois), atlas)
    return rois, dropped


def parcel_names(config, n_targets, space=None):
    """The targets' names: ``rois.names`` (a list or a file), else the names the runs' files give (a text
    table's header, ``space.names``), else ``parcel_0001``, ... (``parcel_rois``)."""
    names = _spec(config).get("names")
    if names is None and space is not None and space.names:
        return list(space.names)
    if names is None:
        return list(parcel_rois(n_targets))
    if isinstance(names, str):
        names = Path(names)
    return read_names(names, n_targets)


def roi_networks(config, rois):
    """The network of each ROI, for ordering heatmaps and summarising tables, or None when none is known.

    Parameters
    ----------
    config : dict
    rois : sequence of str
        ROI names as in alignment.csv.

    Returns
    -------
    dict ROI -> network (ROIs without one are left out), or None
    """
    rois = [str(roi) for roi in rois]
    spec = _spec(config)
    if spec.get("networks"):
        path = Path(spec["networks"])
        names = _names_for_networks(config, rois)
        groups = read_networks(path, names, field="rois.networks")
        found = {names[i]: network for network, index in groups.items() for i in index}
        return {roi: found[roi] for roi in rois if roi in found}
    atlas = spec.get("atlas", "auto")
    known = builtin_networks(atlas, rois) if isinstance(atlas, str) and atlas in BUILTIN_ATLASES else None
    return known if known else networks_from_names(rois)


def _names_for_networks(config, rois):
    """Parcel names in target order for resolving a networks file against the table's ROI names."""
    names = _spec(config).get("names")
    if names is not None:
        if isinstance(names, str):
            names = Path(names)
        return read_names(names)
    # the default parcel names say their index: the largest one tells how many parcels there were
    numbers = [int(m.group(1)) for m in (re.fullmatch(r"parcel_(\d+)", roi) for roi in rois) if m]
    if len(numbers) < len(rois):
        return rois                 # ROIs of a label atlas: the networks file names them
    width = len(next(roi for roi in rois)) - len("parcel_")
    return [f"parcel_{i + 1:0{width}d}" for i in range(max(numbers))]


def check_rois(config):
    """Check ``rois`` against each subject's first run, from headers only: before any run is loaded.

    Raises InputError for a built-in atlas the data's space does not have offline (saying what it has, or
    which files to give), for files that do not exist, and for keys that need parcels.
    """
    spec, where = _spec(config), config["config_file"]
    base = Path(config["config_file"]).parent
    for key in ("lut", "names", "networks"):
        value = spec.get(key)
        if isinstance(value, str) and not Path(value).is_file():
            raise InputError(f"{value}: field 'rois.{key}' expected an existing file, found none.")
    atlas = spec.get("atlas", "auto")
    files = atlas.values() if isinstance(atlas, dict) else [atlas]
    for value in files:
        if not (isinstance(value, str) and (value == "auto" or value in BUILTIN_ATLASES or value == "parcels")):
            path = Path(value)
            if not path.is_file():
                raise InputError(f"{path}: field 'rois.atlas' expected an existing atlas file or one of "
                                 f"{', '.join(['auto', 'parcels', *BUILTIN_ATLASES])}, found no such file.")
    for subject, subject_spec in (config["subjects"] or {}).items():
        runs = (subject_spec or {}).get("runs") if isinstance(subject_spec, dict) else None
        if not runs or not isinstance(runs[0], dict):
            continue            # load_subject says what is wrong with the runs
        kind, source = peek_space(runs[0], base)
        name = _atlas_name(spec, kind, where, source)
        if isinstance(name, str) and name in BUILTIN_ATLASES:
            check_builtin(name, kind, source, where)
        if name == "parcels" and kind != "parcels":
            log.warning("%s: rois.atlas 'parcels' makes each of the %s targets of %s its own ROI", subject,
                        "voxel" if kind == "volume" else "vertex", source)
