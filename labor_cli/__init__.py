"""labor: LabOR (Labeling Only if Required, ICCV 2021) as a command-line toolkit."""

__version__ = "0.1.0"
