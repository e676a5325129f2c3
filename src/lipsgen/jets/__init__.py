"""Jets: Durham clustering of showered events (FastJet) and their projection onto massless phase space."""

from .clustering import durham_jets, durham_resolutions
from .projection import ProjectedJets, project_jets

__all__ = ["durham_jets", "durham_resolutions", "ProjectedJets", "project_jets"]
