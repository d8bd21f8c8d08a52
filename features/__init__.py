"""Features side: the HDF5 features store, alignment of feature rows to fMRI TRs, FIR delays."""
from .errors import InputError

__all__ = ["InputError"]
