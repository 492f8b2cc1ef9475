"""Mention detection in raw text: a dictionary matcher over KB names, a BIO token tagger and their
combination (see :mod:`genbel.ner.base` for the API: :func:`create_detector`, :func:`default_detector`,
:class:`Detector`, :class:`Span`)."""

from genbel.ner.base import DETECTORS, Detector, Span, create_detector, default_detector, register_detector

__all__ = ["DETECTORS", "Detector", "Span", "create_detector", "default_detector", "register_detector"]
