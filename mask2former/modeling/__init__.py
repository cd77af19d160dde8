"""nn.Modules only: typed keyword-only constructors, never a config object."""

from mask2former.modeling.mask2former import Mask2Former
from mask2former.modeling.pixel_decoder import MSDeformAttnPixelDecoder
from mask2former.modeling.transformer_decoder import MaskedAttentionDecoder

__all__ = ["Mask2Former", "MSDeformAttnPixelDecoder", "MaskedAttentionDecoder"]
