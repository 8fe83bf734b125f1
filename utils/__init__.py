"""The course package: everything the notebooks import lives here, once.

Modules: runtime (mode, device, doctor), prompts, data (GSM8K), rewards, rl (PPO/GRPO maths),
models (policy loading per mode), training (GRPO presets and runs), evaluation (GSM8K harness).
"""

__version__ = "0.1.0"
