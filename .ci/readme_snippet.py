#!/usr/bin/env python
"""Print the Python block of README's "Use the tools on your own model" section: CI and the release workflow run it
against the installed wheel, so the snippet a reader copies is the one that was tested."""
import re, sys
from pathlib import Path

text = (Path(__file__).resolve().parent.parent/'README.md').read_text()
section = re.search(r'^## Use the tools on your own model\n(.*?)(?=^## )', text, re.S | re.M)
if not section: sys.exit('README.md has no "## Use the tools on your own model" section')
blocks = re.findall(r'```python\n(.*?)```', section.group(1), re.S)
if not blocks: sys.exit('README\'s "Use the tools on your own model" section has no ```python block')
print('\n'.join(blocks))
