"""The course package: everything the notebooks import lives here, once.

- runtime: workshop mode, device and dtype, Colab, seeding, ``doctor()``
- prompts, data: the R1-Zero instruction and GSM8K (shipped offline copy)
- rewards, reward_lab: verifiable rewards and the widget lab of notebook 03
- rl, toy_tasks, diagrams, trl_check: the algorithms of notebooks 01-02 and their checks
- models, generation: policy loading per mode and batched generation
- training, train, health: GRPO presets, runs, checkpoints, the ``python -m utils.train`` CLI
- evaluation, evaluate, stats: the GSM8K harness and the ``python -m utils.evaluate`` CLI
"""

__version__ = "0.1.0"
