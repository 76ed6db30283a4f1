"""The CUDA code paths: fp16 training on quantized bases, WER by generate under fp16 autocast,
resume, adapter reload, merged export and transcription, each on a GPU.

Marked `gpu` and skipped with a reason where no CUDA GPU is visible (conftest.py); every
feature here also has a CPU test, these add the paths only a GPU takes: fp16 autocast and
the GradScaler with 8-bit and 4-bit bases, CUDA placement of checkpoints, adapters and
exports. A tiny random-weight Whisper (d_model 64, 2 + 2 layers) keeps each test to seconds.
`python benchmarks/gpu_check.py` runs them (as `pytest -m gpu tests/test_gpu.py`);
WHISPER_LORA_GPU_TESTS_ON_CPU=1 runs their bodies on the CPU (no fp16 there) to debug them.
"""
import json
import math
import shutil
import warnings

import pytest
import torch
from safetensors import safe_open

from fixtures.tiny_runs import prepared_run, tiny_model_dir
from helpers.model.adapters import attach_adapter, trainable_dtype_summary
from helpers.model.load import load_model
from helpers.run import RunDir
from helpers.train.trainer import (build_trainer, eval_clips, finish_training, load_training_model, loss_history, run_training, train, training_dataset)

pytestmark = pytest.mark.gpu
ON_CUDA = torch.cuda.is_available()
DEVICE = "cuda" if ON_CUDA else "cpu"
SAME_MODEL = 1e-3      # relative: the same weights and kernels give the same loss (fp16 noise)
MERGE = 1e-4           # relative: merged fp32 weights vs base + adapter in fp32 on the CPU
ACCUMULATION = 0.05    # relative: per-clip mean losses vs one batch mean (token weighting)


def lora_weights(model) -> dict:
    """Copies of every LoRA tensor, on the CPU."""
    return {name: p.detach().float().cpu().clone() for name, p in model.named_parameters()
            if "lora_" in name}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(root folder, a tiny random-weight Whisper saved there)."""
    root = tmp_path_factory.mktemp("gpu")
    return root, tiny_model_dir(root / "tiny-whisper")


def gpu_run(tiny, name: str, **overrides):
    """A prepared run of the tiny model on 8 cv-mini clips, fp16 (on a GPU), batch 2."""
    root, model = tiny
    settings = dict(model=str(model), precision="8bit", batch_size=2, max_steps=4,
                    save_steps=10, logging_steps=1, warmup_steps=0, learning_rate=1e-3,
                    fp16=True, eval_steps=None)
    return prepared_run(root, name, train_clips=8, test_clips=4, **{**settings, **overrides})


def batch_of(trainer, dataset, device):
    """The collator's batch of the first two training examples, on `device`."""
    batch = trainer.data_collator([dataset[0], dataset[1]])
    return {key: value.to(device) for key, value in batch.items() if torch.is_tensor(value)}


def loss_on(model, batch) -> float:
    """The model's loss on `batch` in eval mode (fp16 autocast on CUDA), without gradients."""
    model.eval()
    device = next(model.parameters()).device.type
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=device == "cuda"):
        inputs = {**batch, "input_features": batch["input_features"].to(
            model.get_encoder().conv1.weight.dtype)}
        return float(model(**inputs).loss)


@pytest.mark.parametrize("precision", ["8bit", "4bit"])
def test_fp16_lora_steps_on_a_quantized_base(tiny, precision):
    run, config = gpu_run(tiny, f"fp16-{precision}", precision=precision)
    model, processor = load_training_model(config)
    assert {p.device.type for p in model.parameters()} == {DEVICE}
    assert set(trainable_dtype_summary(model)) == {"float32"}   # fp16 + GradScaler need fp32
    before = lora_weights(model)
    trainer = build_trainer(model, processor, training_dataset(config, run, processor), config, run)
    assert trainer.args.fp16 is ON_CUDA
    summary = train(trainer)
    losses = [entry["loss"] for entry in loss_history(trainer)]
    assert summary["train_steps"] == 4 and len(losses) == 4
    assert all(math.isfinite(loss) for loss in losses), losses
    after = lora_weights(model)
    # AdamW moves a weight only where its gradient was non-zero (weight decay is 0): every
    # LoRA tensor moved, lora_A from step 2 on (lora_B starts at zero).
    assert [name for name in before if torch.equal(before[name], after[name])] == []
    if ON_CUDA:
        scaler = trainer.accelerator.scaler
        assert scaler is not None and 0 < scaler.get_scale() < math.inf
        assert summary["peak_gpu_device_bytes"] >= summary["peak_gpu_reserved_bytes"] \
            >= summary["peak_gpu_allocated_bytes"] > 0


def test_fp16_lora_steps_on_an_fp16_base(tiny):
    """The blog-v3-turbo preset's way: float16 base weights, float32 LoRA, fp16 autocast and
    the GradScaler (off CUDA the base is loaded in fp32 with a warning: test_large_v3.py)."""
    run, config = gpu_run(tiny, "fp16-base", precision="fp16")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, processor = load_training_model(config)
    fell_back = any("fp32 instead" in str(w.message) for w in caught)
    assert fell_back is not ON_CUDA
    base = {p.dtype for n, p in model.named_parameters() if "lora_" not in n}
    assert base == ({torch.float16} if ON_CUDA else {torch.float32})
    assert set(trainable_dtype_summary(model)) == {"float32"}   # the GradScaler needs fp32
    before = lora_weights(model)
    trainer = build_trainer(model, processor, training_dataset(config, run, processor), config, run)
    losses = [entry["loss"] for entry in (train(trainer), loss_history(trainer))[1]]
    assert len(losses) == 4 and all(math.isfinite(loss) for loss in losses), losses
    after = lora_weights(model)
    assert [name for name in before if torch.equal(before[name], after[name])] == []


def test_gradient_accumulation_logs_the_loss_of_the_same_larger_batch(tiny):
    """Batch 2 vs batch 1 x 2 accumulation steps: the same two clips, the same mean loss
    (Whisper's loss is a mean: summed micro-batch losses would log twice as much)."""
    first = {}
    for batch_size, steps in ((2, 1), (1, 2)):
        run, config = gpu_run(tiny, f"accumulate-{steps}", batch_size=batch_size,
                              gradient_accumulation_steps=steps, max_steps=1)
        model, processor = load_training_model(config)
        trainer = build_trainer(model, processor, training_dataset(config, run, processor),
                                config, run)
        train(trainer)
        first[steps] = loss_history(trainer)[0]["loss"]
    assert first[2] == pytest.approx(first[1], rel=ACCUMULATION), first


@pytest.fixture(scope="module")
def trained(tiny):
    """8-bit base + LoRA trained 4 fp16 steps, checkpoints at 2 and 4, WER by generate at 2
    and 4; records whether each decoder call ran under autocast and in which mode."""
    run, config = gpu_run(tiny, "trained", save_steps=2, eval_steps=2, eval_max_clips=2,
                          keep_best_adapter=True)
    model, processor = load_training_model(config)
    dataset = training_dataset(config, run, processor)
    clips = eval_clips(config, run, processor.tokenizer)
    calls = []
    decoder = model.get_base_model().model.decoder
    decoder.register_forward_pre_hook(lambda module, args: calls.append(
        (module.training, torch.is_autocast_enabled("cuda"))))
    trainer = build_trainer(model, processor, dataset, config, run, clips=clips)
    metrics = finish_training(trainer, config, run, train(trainer))
    return run, config, trainer, dataset, metrics, calls


def test_wer_by_generate_under_fp16_autocast_is_logged_with_the_loss(trained):
    run, _, _, _, metrics, calls = trained
    log = run.read_json("train_log.json", "04")
    measured = [entry for entry in log if "eval_wer" in entry]
    assert [entry["step"] for entry in measured] == [2, 4]
    assert all(math.isfinite(e["loss"]) and e["eval_wer"] >= 0 and e["eval_clips"] == 2
               for e in measured)
    generating = [autocast for training, autocast in calls if not training]
    assert generating, "generate never ran the decoder in eval mode"
    assert all(generating) is ON_CUDA    # fp16 autocast during generate on a GPU only
    assert metrics["best_eval_wer"] == min(entry["eval_wer"] for entry in measured)


def test_checkpoint_then_resume_ends_where_the_whole_run_ended(trained):
    run, config, trainer, _, metrics, _ = trained
    copy = RunDir("resumed", run.path.parent)
    shutil.copytree(run.path, copy.path, dirs_exist_ok=True)
    shutil.rmtree(copy.checkpoints_dir / "checkpoint-4")
    resumed = run_training(config, copy, resume=True)
    assert resumed["resumed_from_step"] == 2 and resumed["train_steps"] == 4
    assert resumed["final_loss"] == pytest.approx(metrics["final_loss"], rel=0.02)
    whole, again = lora_weights(trainer.model), lora_weights(
        attach_adapter(load_model(config.model, precision="fp32", device="cpu")[0], copy.adapter_dir))
    assert again.keys() == whole.keys()
    for name in whole:   # fp16 kernels need not repeat bit for bit; 2 steps of lr 1e-3 apart
        assert torch.allclose(again[name], whole[name], atol=2e-3, rtol=0.05), name


def test_adapter_saved_from_cuda_reloads_to_the_same_model(trained):
    run, config, trainer, dataset, _, _ = trained
    reloaded = attach_adapter(load_model(config.model, precision="8bit")[0], run.adapter_dir)
    assert {p.device.type for p in reloaded.parameters()} == {DEVICE}
    assert lora_weights(reloaded).keys() == lora_weights(trainer.model).keys()
    assert all(torch.equal(a, b) for a, b in zip(lora_weights(reloaded).values(),
                                                 lora_weights(trainer.model).values()))
    batch = batch_of(trainer, dataset, DEVICE)
    assert loss_on(reloaded, batch) == pytest.approx(loss_on(trainer.model, batch), rel=SAME_MODEL)


def test_merged_export_of_a_cuda_trained_adapter(trained, tmp_path):
    from transformers import WhisperForConditionalGeneration

    from helpers.export.merge import export_merged

    run, config, trainer, dataset, _, _ = trained
    out = export_merged(run.adapter_dir, tmp_path / "merged")
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert not [key for key in weights.keys() if "lora" in key or "base_layer" in key]
    merged = WhisperForConditionalGeneration.from_pretrained(str(out))
    reference = attach_adapter(load_model(config.model, precision="fp32", device="cpu")[0],
                               run.adapter_dir)
    batch = batch_of(trainer, dataset, "cpu")
    assert loss_on(merged, batch) == pytest.approx(loss_on(reference, batch), rel=MERGE)


def test_transcribe_command_runs_on_the_gpu(trained, capsys):
    from helpers.transcribe.__main__ import main

    run, config, _, _, _, _ = trained
    clips = [clip["path"] for clip in run.read_jsonl("test_clips.jsonl", "01")[:2]]
    for extra in (["--adapter", str(run.adapter_dir), "--precision", "8bit"],
                  ["--model", config.model, "--precision", "fp16" if ON_CUDA else "fp32"]):
        if ON_CUDA:
            torch.cuda.reset_peak_memory_stats()
        assert main([*extra, "--batch-size", "2", *clips]) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["path"] for line in lines] == clips
        assert all(isinstance(line["text"], str) for line in lines)
        if ON_CUDA:
            assert torch.cuda.max_memory_allocated() > 0   # the model ran on the GPU


def test_inference_decodes_under_the_autocast_of_wer_during_training(trained):
    """Notebook 05's predict (the commands, 02 and 06 decode the same way) and a long-form
    window on the 8-bit base + adapter: every decoder call runs under fp16 autocast on a
    GPU, as WER during training does (the test above); none on a CPU."""
    from helpers.evaluate.scoring import predict
    from helpers.transcribe.long_form import transcribe_long

    run, config, _, _, _, _ = trained
    base, processor = load_model(config.model, precision="8bit")
    model = attach_adapter(base, run.adapter_dir).eval()
    calls = []
    model.get_base_model().model.decoder.register_forward_pre_hook(
        lambda module, args: calls.append(torch.is_autocast_enabled("cuda")))
    clips = run.read_jsonl("test_clips.jsonl", "01")[:2]
    predict(model, processor, clips, batch_size=2, progress=False, fallback=False)
    transcribe_long(model, processor, clips[0]["path"], fallback=False, max_new_tokens=8)
    assert calls and all(calls) is ON_CUDA
