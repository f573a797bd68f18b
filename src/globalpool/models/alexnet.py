"""AlexNet (Krizhevsky et al. 2012), the single-tower layout of the common PyTorch port."""

from __future__ import annotations

from torch import nn

from globalpool.models.registry import register_model

__all__ = ["AlexNet"]


@register_model(
    "alexnet",
    summary="AlexNet (224x224): 5 convs (64-192-384-256-256) + 3 max pools, FC 4096-4096 head",
    default_head="fc",
    input_size=(224, 224),
    head_defaults={"fc": {"hidden": [4096, 4096], "dropout": 0.5}},
)
class AlexNet(nn.Sequential):
    """The AlexNet feature extractor, single tower, as in the common PyTorch port.

    Source: A. Krizhevsky, I. Sutskever, G. E. Hinton, "ImageNet Classification with Deep
    Convolutional Neural Networks", NeurIPS 2012. The paper splits its layers over two
    GPUs (48 + 48 filters in conv1...); this is the single-tower variant of the PyTorch
    port (after Krizhevsky's "One weird trick", arXiv:1404.5997, 2014): one stack of
    64, 192, 384, 256 and 256 filters, no local response normalisation.

    ==========  ======================================  ==============
    layer       operation                               224x224 input
    ==========  ======================================  ==============
    conv1       conv 11x11 / 4, pad 2, 64, ReLU          55x55x64
    pool1       max pool 3 / 2                           27x27x64
    conv2       conv 5x5, pad 2, 192, ReLU               27x27x192
    pool2       max pool 3 / 2                           13x13x192
    conv3-5     conv 3x3, pad 1: 384, 256, 256, ReLU     13x13x256
    pool3       max pool 3 / 2                           6x6x256
    head "fc"   9216 -> 4096 -> 4096 -> K, dropout 0.5
    ==========  ======================================  ==============

    The default "fc" head (``hidden=[4096, 4096]``, ``dropout=0.5``) is the port's
    classifier: with 1000 classes the whole network has 61,100,840 parameters, of which
    58,631,144 sit in the three Linear layers and 2,469,696 in the convolutions.

    The PyTorch port puts an ``AdaptiveAvgPool2d((6, 6))`` between the features and the
    classifier so that its FC layers accept any input size. It is left out here on
    purpose: at 224x224 the maps are already 6x6, so it changes nothing there; at any
    other size it would resample the maps to 6x6, hiding from the "fc" head the fact this
    project is about (an FC head is built for one feature size) and blurring the maps the
    pooling heads and CAM see. So the backbone returns the true (N, 256, h, w) maps, the
    "fc" head is tied to the input size the model was built for (``input_size=...`` of
    ``create_model`` sizes it), and the pooling heads ("classmap", "pool-linear") take any
    input of at least 63x63. Dropout sits after each hidden ReLU (the port puts it before
    each hidden Linear); the parameter counts are the same.

    Args:
        in_chans: input channels.

    Input shape: (N, in_chans, H, W), H, W >= 63. Output shape: (N, 256, h, w), 6x6 at
    224x224.

    Example:
        >>> import torch
        >>> from globalpool.models import create_model
        >>> model = create_model("alexnet", 1000, head="pool-linear", pool="avg")
        >>> model(torch.randn(1, 3, 224, 224)).shape
        torch.Size([1, 1000])
    """

    num_features = 256

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_chans, 64, 11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
