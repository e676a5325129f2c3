"""Event files: HDF5 (lipsgen's own layout)."""

from .atomic import atomic_output
from .hdf5 import EventFileError, read_attributes_h5, read_events_h5, write_events_h5

__all__ = ["EventFileError", "atomic_output", "read_attributes_h5", "read_events_h5", "write_events_h5"]
