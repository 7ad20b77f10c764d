"""Test double of ComfyUI 0.3.75's ``comfy_api`` package (only what the PASL pack uses).

``tests/host_double`` is put at the front of ``sys.path`` by ``tests/test_nodes_unit.py`` only, so
that the pack's nodes import ``comfy_api.v0_0_2``, ``comfy.*`` and ``folder_paths`` from here when
no real ComfyUI is installed. Names and signatures follow ComfyUI 0.3.75; the code is our own.
"""
