"""The desk's components: each is one partial template (`templates/_<name>.html`) with a single root element and a
stable id, rendered the same way for its three uses: included by a page, returned alone to an htmx request, and
pushed over `/ws/ui` with `hx-swap-oob`. One module per screen area.

Loading goes through the read actions, which decide what the viewer may see; rendering is pure.
"""
