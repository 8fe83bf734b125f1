"""The course package: everything the notebooks import lives here, once.

The map of its modules, in lesson order: the lessons whose code imports each one or runs it with
``python -m`` (a solution notebook counts for its lesson; ``-``: only other modules use it, named
in brackets). The README's layout section holds the same map; tests/test_project_map.py checks
that both list every module and the lessons that use it.

module         lessons   what it is
runtime        01-06     where the course runs: mode, device, dtype, Colab, seeding, doctor()
install_sets   01-06     what the setup cell installs on each runtime (the one copy of the pins)
exercises      01-06     self-checking exercises: a check says right or wrong, not the answer
show           01 02 05 06  a library function's own source, as the lesson teaching it shows it
diagrams       01 02 06  the course's diagrams, drawn with matplotlib alone
rl             01-04 06  the RL algorithms: returns, GAE, PPO, KL estimators, GRPO
toy_tasks      01 02     LineWorld and SortTask: toy problems that learn in seconds on a CPU
trl_check      02        TRL's own GRPO code run on our tensors, to check rl against it
dpo            02 06     DPO from scratch, pairs from verifiable rewards, DPO with TRL
prompts        03 04 06  the instruction to think in <think> and answer in <answer>
grader/        -         the accuracy reward's grader and its POLICY.md (rewards, stats)
rewards        03 04     the reward functions GRPO trains with, and the grader's entry points
reward_lab     03 04     the reward lab: score a group of completions, see advantages move
data           -         GSM8K, shipped offline, with a chat prompt (training, evaluation)
models         04 06     the policy for each workshop mode, for GRPO or for evaluation
sampling       06        the CPU decoder of a Llama-family model (generation, grpo_scratch)
generation     -         batched, left-padded generation for chat prompts (training, evaluation)
grpo_scratch   04 06     GRPO on a real language model in plain PyTorch
training       04 06     GRPO with TRL's GRPOTrainer: presets, data, run, resume, save
train          04 05     python -m utils.train: GRPO on GSM8K from the command line
health         04        is the GRPO run healthy? its log history, sampled completions, plots
tasks          04 06     a ladder of word problems inside a small model's reach, exact golds
cpu_demo       04 06     make cpu-demo: SmolLM2-135M improves in minutes on a CPU, SFT vs RL
evaluation     05 06     the GSM8K harness: generate, grade, summarise, compare, plot
evaluate       05        python -m utils.evaluate: the harness from the command line
stats          04 05 06  Wilson interval, pass@k, majority vote, McNemar, paired bootstrap
post_training  06        rejection sampling fine-tuning, distillation, test-time compute
reflection     06        the "aha moment", measured: reflection phrases and response length
mismatch       06        the sampler/trainer log-prob gap: per-token gaps, histogram, plot
"""

__version__ = "0.1.0"
