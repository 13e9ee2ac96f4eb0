"""``ramie.examples`` (ramie-examples): small programs to run, read and fork.

Each example is one module with a ``main(argv=None)`` that parses its flags
with argparse, so ``python -m ramie.examples.<name> --help`` documents it and
``main([...])`` runs it from Python. ``common`` holds the little they share
(data, the progress bar, the epoch log, the plot).

- ``mnist``: the main job, the seed README's CNN on handwritten digits;
- ``polyak``: ``mnist`` plus a Polyak (EMA) average of the parameters;
- ``lora``: LoRA adapters added by model surgery, fine-tuned alone;
- ``gnn``: a jraph graph network on the karate club, with ramie transforms and in pure JAX;
- ``resnet``: ResNet v1.5 with BatchNorm, ``model.train()`` / ``model.eval()``;
- ``lm``: a character-level Transformer, layers scanned, sampled through the KV cache;
- ``vae``: a convolutional VAE, the reparameterisation trick on a named RNG stream;
- ``gan``: a small DCGAN, two ``nn.Optimizer`` over the two halves of one model;
- ``seq2seq``: an LSTM encoder-decoder (``nn.RNN``) learning to add, greedy decoding;
- ``segmentation``: a tiny U-Net (``ConvTranspose``, skip connections), mean IoU.

``sharded`` trains over a ``jax.sharding.Mesh`` (``--strategy dp|fsdp|tp``) on N
devices and P local processes; run it with ``python -m ramie.examples.sharded``.

The console script ``ramie-examples list`` lists them, ``ramie-examples run
<name> [flags]`` runs one.

>>> from ramie import examples
>>> examples.EXAMPLES
('mnist', 'polyak', 'lora', 'gnn', 'resnet', 'lm', 'vae', 'gan', 'seq2seq', 'segmentation')
"""

from importlib.metadata import version as _version

from ._cli import EXAMPLES, describe, main

__all__ = ["EXAMPLES", "describe", "main"]
__version__: str = _version("ramie-examples")
