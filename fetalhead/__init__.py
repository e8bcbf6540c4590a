"""fetalhead: fetal head segmentation in 2D ultrasound (HC18) with a U-Net, and head
circumference in millimetres. Import the submodules you need; nothing heavy runs at import."""

__version__ = "0.1.0"
__all__ = ["__version__"]
