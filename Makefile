# swift_ext: every target creates/updates the virtual environment first, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
TINY_MODEL := build/tiny-qwen2-vl
SAMPLE := data/sample/episode-wise-conversations.jsonl
DEMO_OUT ?= output/demo
# Nothing is downloaded from a model or dataset hub: the tiny model and the sample episodes are built locally.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export MODELSCOPE_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo eval test test-matrix lint bench bench-flower bench-converter bench-unpack tiny-model sample-data \
	ac-unpack ac-conversations ac-partition ac-data ac-sample clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps android-env==1.3.0
	$(PY) -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

$(TINY_MODEL)/config.json: $(VENV)/.installed data_tools/tiny_model.py
	$(PY) -m data_tools.tiny_model --output $(TINY_MODEL)

tiny-model: $(TINY_MODEL)/config.json

$(SAMPLE): $(VENV)/.installed data_tools/sample_episodes.py
	$(PY) -m data_tools.sample_episodes --output data/sample

sample-data: $(SAMPLE)

# The main job: FedMABench's command line (ms-swift 2.x names) on the tiny Qwen2-VL and the sample episodes, on CPU.
demo: $(TINY_MODEL)/config.json $(SAMPLE)
	MAX_PIXELS=602112 $(BIN)/swift sft --round 4 --fed_alg fedavg --client_num 4 --client_sample 2 \
	  --model_type qwen2-vl-2b-instruct --model_id_or_path $(TINY_MODEL) \
	  --check_model_is_latest False --lazy_tokenize True --preprocess_num_proc 1 \
	  --dataset $(SAMPLE) --sft_type lora --tuner_backend peft --dtype AUTO \
	  --output_dir $(DEMO_OUT) --train_dataset_sample -1 --dataset_test_ratio 0 --max_steps 4 --max_length 8192 \
	  --check_dataset_strategy warning --lora_rank 8 --lora_alpha 32 --lora_dropout 0.05 \
	  --gradient_checkpointing true --batch_size 1 --weight_decay 0.1 --learning_rate 5e-4 \
	  --gradient_accumulation_steps 1 --max_grad_norm 0.5 --warmup_ratio 0.03 --eval_strategy no \
	  --save_strategy no --logging_steps 100 --save_every 2

# Action metrics of every global adapter of the newest demo run (and the base model); run `make demo` first.
eval: $(TINY_MODEL)/config.json $(SAMPLE)
	$(BIN)/swift-ext-eval --model $(TINY_MODEL) --run_dir $$(ls -d $(DEMO_OUT)/v*-* | tail -1) --base \
	  --dataset $(SAMPLE) --limit 32 --max_new_tokens 16 --output_dir $(DEMO_OUT)/eval

# Two pytest workers, a test file each (--dist loadfile: a file's module fixtures are built once): the Flower and
# CLI tests spend much of their time waiting on other processes, so two files overlap well on 2 cores.
TEST_WORKERS ?= 2
test: $(VENV)/.installed
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25

# The second CI environment: transformers 4.57 + qwen-vl-utils 0.0.11 in build/venv-transformers457 (own venv).
test-matrix:
	.ci/matrix/run

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Federated vs plain swift sft on a random-weight preset (built into build/ on first use): SIZE=tiny|small (CPU),
# FAMILY=qwen2_vl|qwen2_5_vl, BENCH_ARGS for more (e.g. --tuner_type full, --repeats 5, --json out.json).
SIZE ?= small
FAMILY ?= qwen2_vl
BENCH_ARGS ?=
bench: $(VENV)/.installed $(SAMPLE)
	$(PY) benchmarks/bench_fed_overhead.py --size $(SIZE) --family $(FAMILY) --dataset $(SAMPLE) $(BENCH_ARGS)

# Android-Control: raw GZIP TFRecord shards -> episodes -> conversations -> client partitions (README section).
AC_RAW ?= data/android_control/raw
AC_OUT ?= data/android_control
AC_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
AC_WORDING ?= default
AC_FORMAT ?= fedmabench
AC_LEVEL ?= high
AC_PARTITION ?= --method dirichlet --partition_by app --alpha 0.5
NUM_CLIENTS ?= 10

ac-unpack: $(VENV)/.installed
	$(PY) -m data_tools.unpack --shards $(AC_RAW)/android_control-* --output $(AC_OUT) \
	  --splits $(AC_RAW)/splits.json --test_subsplits $(AC_RAW)/test_subsplits.json \
	  --workers $(AC_WORKERS) --wording $(AC_WORDING)

ac-conversations: $(VENV)/.installed
	$(PY) scripts/convert_to_conversations.py --input $(AC_OUT)/episode-wise-all.jsonl \
	  --output $(AC_OUT)/conversations.jsonl --image_root $(AC_OUT) --drop_if_missing \
	  --prompt_format $(AC_FORMAT) --level $(AC_LEVEL)

ac-partition: $(VENV)/.installed
	$(PY) -m data_tools.partition --input $(AC_OUT)/conversations.jsonl --output $(AC_OUT)/conversations_clients.jsonl \
	  --split train $(AC_PARTITION) --num_clients $(NUM_CLIENTS) --seed 42 --report_dir $(AC_OUT)/partition_report

ac-data: ac-unpack ac-conversations ac-partition

# The conversion and partition stages on the bundled sample (data/sample/episode-wise-all.jsonl, with its screenshots and
# element lists), without the 47 GB dataset: writes data/sample/conversations{,_clients}.jsonl and partition_report/.
ac-sample: $(SAMPLE)
	$(MAKE) ac-conversations ac-partition AC_OUT=data/sample NUM_CLIENTS=4

# The same federated run in-process and on a loopback Flower deployment (4 SuperNodes): wall ratio, overhead per round.
bench-flower: $(TINY_MODEL)/config.json $(SAMPLE)
	$(PY) benchmarks/bench_flower.py --model $(TINY_MODEL) --dataset $(SAMPLE)

bench-converter: $(VENV)/.installed
	$(PY) benchmarks/bench_converter.py

# TensorFlow for bench-unpack's comparison only, in its own venv (it pins its own protobuf; nothing else needs it).
TF_VENV := build/venv-tensorflow
$(TF_VENV)/.installed:
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/python -m pip install -q tensorflow-cpu==2.21.0
	touch $@

# Unpack (checksums, elements, PNG and JSON writing) against TensorFlow's own parse loop and a bare one, on generated
# 1080x2400 shards. BENCH_UNPACK_ARGS="--output_root /dev/shm" keeps the disk from setting the pace.
BENCH_UNPACK_ARGS ?=
bench-unpack: $(VENV)/.installed $(TF_VENV)/.installed
	$(PY) benchmarks/bench_unpack.py --workers $(AC_WORKERS) --tensorflow_python $(TF_VENV)/bin/python $(BENCH_UNPACK_ARGS)

clean:
	rm -rf build data/sample output
