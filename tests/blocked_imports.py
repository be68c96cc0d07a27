"""The start of a script that runs with onnxruntime and scikit-learn unimportable
(decoding must need neither: the map is in the stream)."""

BLOCK_MODELS = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('onnxruntime', 'sklearn'):
            raise ImportError(name + ' is blocked in this test')
sys.meta_path.insert(0, Block())
"""
