"""``dagan webui``: a local web page for animating a face (Gradio; the optional ``web`` extra).

* :mod:`dagan.web.jobs` — one animation job (upload checks, limits, per-job folder, progress and cancel),
  free of Gradio so that it can be tested and reused on its own;
* :mod:`dagan.web.pointcloud` — the source's depth as a coloured 3-D point cloud / surface (PLY and GLB);
* :mod:`dagan.web.app` — the page (Gradio Blocks) and the server.
"""
