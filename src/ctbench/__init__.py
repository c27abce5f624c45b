"""ctbench: CT segmentation architectures x losses, one command each."""

__version__ = "0.1.0"
