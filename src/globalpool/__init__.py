"""globalpool: global pooling for convolutional neural networks, on PyTorch."""

__version__ = "0.1.0"
