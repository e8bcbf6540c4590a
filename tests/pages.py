"""What the links of an HTML page written by fetalhead point to, as a browser resolves them."""

from __future__ import annotations

import html
import re
import urllib.parse
import urllib.request

_FOLDER = "file:///folder/"


def linked(page: str, attribute: str = "src") -> list[str]:
    """The file names, beside the page, that its `attribute` ("src" or "href") values point to
    when a browser opens it from its folder; AssertionError for a link that leaves the folder
    or is read as another scheme, a query or a fragment."""
    names = []
    for value in re.findall(rf'{attribute}="([^"]*)"', page):
        url = urllib.parse.urlsplit(urllib.parse.urljoin(_FOLDER + "index.html", html.unescape(value)))
        assert url.scheme == "file" and not url.query and not url.fragment, value
        path = urllib.request.url2pathname(url.path)
        assert path.startswith("/folder/"), value
        names.append(path[len("/folder/"):])
    return names
