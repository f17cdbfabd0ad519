"""Puts SECTION_FILE (a part that begins `<!-- NAME:begin` and ends `<!-- NAME:end -->`)
into DOC in place of the part of that name, or at its end: the measurement scripts own
only their own part of a document; the rest is written by hand.
Usage: python3 bench/write_section.py NAME SECTION_FILE DOC"""
import re
import sys

name, section_file, doc_file = sys.argv[1:4]
section = open(section_file).read()
try:
    doc = open(doc_file).read()
except FileNotFoundError:
    doc = "# Reliability\n"
pattern = re.compile(rf"<!-- {name}:begin.*?<!-- {name}:end -->\n", re.S)
if pattern.search(doc):
    doc = pattern.sub(lambda _: section, doc)
else:
    doc = doc.rstrip("\n") + "\n\n" + section
open(doc_file, "w").write(doc)
