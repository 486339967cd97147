"""cnncli: convolution arithmetic, image filtering and model summaries for CNNs."""

__version__ = "0.1.0"
