"""Looking at a job's output before training on it: a table of its state, and decoded clips
beside their source frames (a contact sheet with PSNR). ``jobs/inspect_latents.py`` is the CLI."""

from .contact_sheet import ContactSheet, SheetClip, compose
from .decode_check import ClipCheck, DecodeCheck, check_decoding
from .psnr import format_psnr, psnr
from .report import describe_output, format_report

__all__ = ["ClipCheck", "ContactSheet", "DecodeCheck", "SheetClip", "check_decoding", "compose", "describe_output",
           "format_psnr", "format_report", "psnr"]
