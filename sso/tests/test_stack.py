"""The XML stack python3-saml signs and verifies with: lxml and xmlsec must use one libxml2 (PITFALLS.md;
a mismatch fails at import with "lxml & xmlsec libxml2 library version mismatch"), and pysaml2 needs
Debian's xmlsec1 binary (``make xmlsec1``)."""

from __future__ import annotations

import shutil
import subprocess

import lxml.etree
import xmlsec


def test_lxml_and_xmlsec_link_the_same_libxml2() -> None:
    assert xmlsec.get_libxml_version() == lxml.etree.LIBXML_VERSION
    assert xmlsec.get_libxml_compiled_version() == lxml.etree.LIBXML_COMPILED_VERSION


def test_xmlsec1_binary_is_installed() -> None:
    binary = shutil.which("xmlsec1")
    assert binary, "pysaml2 (the tests' IdP) needs xmlsec1: run `make xmlsec1`"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout  # noqa: S603
    assert version.startswith("xmlsec1 ")
