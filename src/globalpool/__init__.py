"""globalpool: global pooling for convolutional neural networks, on PyTorch."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import globalpool` stays light and imports nothing of torch-heavy layers.
    if name == "load":
        from globalpool.deploy.loading import load

        return load
    raise AttributeError(f"module 'globalpool' has no attribute {name!r}")
