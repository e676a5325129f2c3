"""Models: backbones, spaces, processes, and their assembly from a config."""

from .model import MODEL_KINDS, GenerativeModel, ModelConfig, SampleOutput
from .networks import MLPBackbone, TransformerBackbone
from .spaces import PSpace, QSpace, ZSpace

__all__ = ["GenerativeModel", "MLPBackbone", "MODEL_KINDS", "ModelConfig", "PSpace", "QSpace",
           "SampleOutput", "TransformerBackbone", "ZSpace"]
