"""ResNet backbone pieces."""

from __future__ import annotations

import torch


def test_frozen_bn_equals_torchvisions_and_passes_gradients_to_its_input():
    from torchvision.ops import FrozenBatchNorm2d

    from mask2former.modeling.backbone.resnet import FrozenBN

    reference, ours = FrozenBatchNorm2d(8), FrozenBN(8)
    torch.manual_seed(0)
    for buffer in ("weight", "bias", "running_mean"):
        getattr(reference, buffer).normal_()
    reference.running_var.uniform_(0.5, 1.5)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 8, 5, 7, requires_grad=True)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=1e-6)
    ours(x).sum().backward()
    assert x.grad is not None and not any(b.requires_grad for b in ours.buffers())
