"""Files bundled with the package (installed with it, so they work from a wheel as well as a checkout).

See ``README.md`` in this folder for their origin and licences: the driving clip and the demo model are
CC BY-SA 4.0, the astronaut photo is public domain.
"""

from __future__ import annotations

from pathlib import Path

#: This folder.
ASSETS = Path(__file__).resolve().parent
#: A real person on a webcam: 176×176, 249 frames at 30 fps, AAC audio (CC BY-SA 4.0).
DEMO_DRIVING = ASSETS / "hello_face_176.mp4"
#: ``skimage.data.astronaut()`` as PNG (public domain): the demo's source face.
DEMO_SOURCE = ASSETS / "demo" / "astronaut.png"
#: The bundled small DaGAN++ model (64×64, with its own FDN++ depth net); the default model of every command.
DEMO_CHECKPOINT = ASSETS / "demo" / "dagan++-demo.pt"
