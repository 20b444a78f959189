"""The pipeline's steps as peers, one module each: prepare, teacher, prune, distill, evaluate,
report. Each takes params and paths and returns a typed result; the stage scripts in `stages/`
write it. Steps never import each other: what two steps share lives a floor below.
"""
