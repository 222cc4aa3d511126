"""Music Gesture: visually guided music source separation, as a Ray pipeline.

Layers, each importing only the ones below it:

- ``config``, ``audio``, ``video``, ``urmp``, ``instruments``, ``pose.openpose``: basics;
- ``synth.music``, ``synth.sound``, ``synth.motion``, ``synth.draw``: the benchmark's parts;
- ``synth.piece``, ``synth.generate``: stages (Ray wiring lives here);
- ``cli``: ``python -m pipeline <command>``.
"""

__version__ = "0.1.0"
