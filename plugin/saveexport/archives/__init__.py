"""The archive analyser: reads save and export archives in one streaming pass; needs no engine."""

from .diff import compare, decompose
from .flatten import flatten
from .reader import LEGACY, OCI, ROOTFS, Archive, Image, Layer
from .verify import Violation, verify

__all__ = ["Archive", "Image", "Layer", "LEGACY", "OCI", "ROOTFS", "Violation", "compare", "decompose", "flatten",
           "verify"]
