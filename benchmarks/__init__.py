"""``python -m benchmarks``: how fast MiniGPT-v2 runs on this machine, against its own limits.

Issue 8 asks for one command that measures the machine (matmul GFLOP/s in fp32 and bf16, memory
read bandwidth) and then, for three model sizes, training throughput and model-FLOPs utilisation,
generation latency and throughput, multi-turn chat latency, evaluation throughput and peak memory;
``--full`` adds the real-size ViT-g + LLaMA-2-7B timed layer by layer.

Modules:

* ``measure``    -- best-of-N timing, peak RSS, running a section in its own process.
* ``machine``    -- matmul throughput and memory bandwidth.
* ``flops``      -- the model-FLOPs formula behind MFU.
* ``setups``     -- the benchmarked model configurations and their inputs.
* ``training``   -- training steps: samples/s and MFU.
* ``generation`` -- time to first token, tokens/s, second chat turn.
* ``evaluation`` -- Shapes evaluation items/s.
* ``full_size``  -- ViT-g 448 px and LLaMA-2-7B at real size, one layer at a time.
* ``report``     -- the table and the headline keys of the JSON.
"""
