"""The ``framekit`` command line: parses arguments, calls :mod:`framekit`, renders."""

from __future__ import annotations
