"""Blocks shared by several methods (timm's `layers/`): one small file per concept.

Methods import these, never each other: slot attention and its decoder (JSA), flow attention and
optical flow (HearTheFlow / SIRA), the LVS trimap logits, momentum (EMA) copies, head init and the
tensor-side augmentations of SSL-Align.
"""

from soundlens.models.layers.augment import random_view, time_shift
from soundlens.models.layers.flow import FARNEBACK_PARAMS, FlowAttention, farneback_flow, flow_batch
from soundlens.models.layers.init import init_heads
from soundlens.models.layers.momentum import ema_update, momentum_copy
from soundlens.models.layers.slot_attention import JointSlotAttention, JointSlots, slot_attention_map
from soundlens.models.layers.slot_decoder import LearnedPositions2D, SlotMixtureDecoder
from soundlens.models.layers.trimap import past_warmup, trimap_logits

__all__ = [
    "FARNEBACK_PARAMS", "FlowAttention", "JointSlotAttention", "JointSlots", "LearnedPositions2D",
    "SlotMixtureDecoder", "ema_update", "farneback_flow", "flow_batch", "init_heads", "momentum_copy",
    "past_warmup", "random_view", "slot_attention_map", "time_shift", "trimap_logits",
]
