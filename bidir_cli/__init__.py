"""bidir: does the GTE bidirectional contrastive loss beat in-batch negatives on my model and data?"""

__version__ = "0.1.0"
