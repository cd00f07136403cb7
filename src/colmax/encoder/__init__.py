"""Text to ColBERT token vectors."""

from colmax.encoder.config import EncoderConfig
from colmax.encoder.encoder import Encoder, EncodeStats

__all__ = ["EncodeStats", "Encoder", "EncoderConfig"]
