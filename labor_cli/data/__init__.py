"""Datasets (cityscapes, gta5, synthia, folder), label tables and transforms."""
