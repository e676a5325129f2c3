"""Event files: HDF5 (lipsgen's own layout), npz, LHE (pylhe), and vector/awkward arrays."""

from .atomic import atomic_output
from .errors import EventFileError
from .formats import event_format, load_events, read_events, read_weights, write_events
from .hdf5 import read_attributes_h5, read_events_h5, write_events_h5
from .lhe import read_events_lhe, write_events_lhe
from .npz import read_events_npz, write_events_npz
from .vector_arrays import from_vector, to_vector

__all__ = [
    "EventFileError", "atomic_output", "event_format", "from_vector", "load_events",
    "read_attributes_h5", "read_events", "read_weights", "read_events_h5", "read_events_lhe", "read_events_npz",
    "to_vector", "write_events", "write_events_h5", "write_events_lhe", "write_events_npz",
]
