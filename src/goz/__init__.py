"""goz: the toolkit of the GOZ (Generic Object Zero-shot) benchmark."""

__version__ = "0.1.0"
