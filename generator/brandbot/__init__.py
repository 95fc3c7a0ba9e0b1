"""brandbot: turn one brand file into a tested, deployable Chainlit customer-service bot."""

__version__ = "0.9.0"
