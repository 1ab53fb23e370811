"""The Qwen2-VL compatibility layer (swift_ext.template): each field failure of the FedMABench fork is constructed
here and shown to be handled, or to fail with a message that names the numbers and the fix."""

import json
import os
import types

import pytest
from PIL import Image
from torch import nn

from swift_ext.template import (
    CheckedQwen2VLTemplate,
    PixelLimits,
    check_image_token_count,
    ensure_image_grid_thw,
    find_get_rope_index,
    find_input_embeddings,
    find_visual,
    image_grid_thw_for,
    register_checked_templates,
    resolve_pixel_limits,
    resolve_vision_token_ids,
)
from tests.conftest import as_argv, read_jsonl, run_cli, run_dir, tiny_lora_options

# --------------------------------------------------------------------------------------- fake model layouts


class LanguageModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(8, 4)


class InnerModel(nn.Module):
    """transformers >= 4.52 layout: Qwen2VLModel with .language_model and .visual and get_rope_index."""

    def __init__(self, with_rope: bool = True):
        super().__init__()
        self.language_model = LanguageModel()
        self.visual = nn.Linear(2, 2)
        if with_rope:
            self.get_rope_index = lambda *args, **kwargs: 'inner rope'


class OuterWithoutHfApi(nn.Module):
    """A ConditionalGeneration-like class whose get_input_embeddings is not implemented and has no get_rope_index."""

    def __init__(self, inner_rope: bool = True):
        super().__init__()
        self.model = InnerModel(with_rope=inner_rope)

    def get_input_embeddings(self):
        raise NotImplementedError


class PeftLike(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.base_model = model

    def get_base_model(self):
        return self.base_model


class DdpLike(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.module = model


def test_embeddings_reachable_only_via_language_model_are_found_through_ddp_and_peft():
    outer = OuterWithoutHfApi()
    assert find_input_embeddings(DdpLike(PeftLike(outer))) is outer.model.language_model.embed_tokens


def test_embeddings_of_old_layout_are_found():
    outer = OuterWithoutHfApi()
    outer.model = LanguageModel()  # transformers 4.4x-4.51 layout: model.embed_tokens
    assert find_input_embeddings(PeftLike(outer)) is outer.model.embed_tokens


def test_missing_embeddings_fail_naming_the_paths_tried():
    outer = OuterWithoutHfApi()
    outer.model = nn.Module()
    with pytest.raises(AttributeError, match='model.language_model.embed_tokens'):
        find_input_embeddings(PeftLike(outer))


def test_get_rope_index_missing_on_the_outer_class_is_taken_from_the_inner_model():
    get_rope_index = find_get_rope_index(DdpLike(PeftLike(OuterWithoutHfApi())))
    assert get_rope_index() == 'inner rope'
    assert isinstance(find_visual(PeftLike(OuterWithoutHfApi())), nn.Linear)


def test_get_rope_index_missing_everywhere_refuses_1d_positions():
    with pytest.raises(AttributeError, match='refusing to fall back to 1-D positions'):
        find_get_rope_index(PeftLike(OuterWithoutHfApi(inner_rope=False)))


def test_real_tiny_model_under_lora(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2VLForConditionalGeneration

    model = Qwen2VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    expected_embeddings = model.get_input_embeddings()
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=['q_proj']))
    assert find_input_embeddings(peft_model) is expected_embeddings
    assert callable(find_get_rope_index(peft_model))


# --------------------------------------------------------------------------------------- vision token ids


@pytest.fixture(scope='module')
def tiny_tokenizer_and_config(tiny_model_dir):
    from transformers import AutoConfig, AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir), AutoConfig.from_pretrained(tiny_model_dir)


def test_vision_token_ids_come_from_the_tokenizer(tiny_tokenizer_and_config):
    tokenizer, config = tiny_tokenizer_and_config
    ids = resolve_vision_token_ids(tokenizer, config)
    # the real Qwen2 vocabulary's ids (tiny_model.py rebuilds it from qwen.tiktoken)
    assert (ids.vision_start, ids.vision_end, ids.image, ids.video) == (151652, 151653, 151655, 151656)


def test_tokenizer_image_id_differing_from_config_fails_with_both_ids(tiny_tokenizer_and_config):
    tokenizer, config = tiny_tokenizer_and_config
    wrong = types.SimpleNamespace(**{**config.to_dict(), 'image_token_id': 151999})
    with pytest.raises(ValueError, match=r'<\|image_pad\|>: tokenizer 151655, config.image_token_id 151999'):
        resolve_vision_token_ids(tokenizer, wrong)


def test_tokenizer_without_vision_tokens_fails_naming_the_token():
    class NoVisionTokenizer:
        unk_token_id = 0

        def convert_tokens_to_ids(self, token):
            return 0

    with pytest.raises(ValueError, match=r'has no <\|vision_start\|> token'):
        resolve_vision_token_ids(NoVisionTokenizer(), types.SimpleNamespace())


# --------------------------------------------------------------------------------------- pixel limits and grids

QWEN_VL_UTILS_0_0_14 = types.SimpleNamespace(IMAGE_MIN_TOKEN_NUM=4, IMAGE_MAX_TOKEN_NUM=16384, SPATIAL_MERGE_SIZE=2)
QWEN_VL_UTILS_0_0_11 = types.SimpleNamespace(IMAGE_FACTOR=28, MIN_PIXELS=4 * 28 * 28, MAX_PIXELS=16384 * 28 * 28)
PROCESSOR = types.SimpleNamespace(patch_size=14, merge_size=2)


@pytest.fixture
def no_pixel_env(monkeypatch):
    monkeypatch.delenv('MAX_PIXELS', raising=False)
    monkeypatch.delenv('MIN_PIXELS', raising=False)
    return monkeypatch


@pytest.mark.parametrize('vision_process', [QWEN_VL_UTILS_0_0_14, QWEN_VL_UTILS_0_0_11, types.SimpleNamespace()])
def test_pixel_limits_without_image_factor_are_qwen2_vl_defaults(vision_process, no_pixel_env):
    assert resolve_pixel_limits(PROCESSOR, vision_process) == PixelLimits(28, 4 * 28 * 28, 16384 * 28 * 28)


def test_pixel_limits_follow_the_processor_and_the_environment(no_pixel_env):
    no_pixel_env.setenv('MAX_PIXELS', '602112')
    no_pixel_env.setenv('MIN_PIXELS', '1024')
    patch16 = types.SimpleNamespace(patch_size=16, merge_size=2)
    assert resolve_pixel_limits(patch16, QWEN_VL_UTILS_0_0_14) == PixelLimits(32, 1024, 602112)


def test_bad_pixel_environment_variable_is_named(no_pixel_env):
    no_pixel_env.setenv('MAX_PIXELS', '600k')
    with pytest.raises(ValueError, match="MAX_PIXELS='600k'"):
        resolve_pixel_limits(PROCESSOR, QWEN_VL_UTILS_0_0_14)


def test_inferred_grid_matches_the_real_processor_for_a_non_square_image(no_pixel_env):
    from qwen_vl_utils import fetch_image
    from transformers import Qwen2VLImageProcessor

    no_pixel_env.setenv('MAX_PIXELS', str(200 * 28 * 28))
    image = Image.new('RGB', (1080, 400), (10, 20, 30))  # width != height: the order matters
    processor = Qwen2VLImageProcessor()
    limits = resolve_pixel_limits(processor)
    resized = fetch_image({'image': image, 'max_pixels': limits.max_pixels, 'min_pixels': limits.min_pixels})
    real = processor(images=[resized], return_tensors='pt', do_resize=False)['image_grid_thw']
    inferred = ensure_image_grid_thw({}, [image.size], limits, processor.patch_size)  # a sample without the grid
    assert inferred.tolist() == real.tolist()
    assert inferred[0, 2] > inferred[0, 1]  # wider than tall
    assert ensure_image_grid_thw({'image_grid_thw': real}, [(1, 1)], limits, 14) is not None


def test_image_token_count_mismatch_names_both_numbers():
    grid = image_grid_thw_for([(560, 560)], PixelLimits(28, 3136, 16384 * 28 * 28), patch_size=14)  # 40x40 patches
    check_image_token_count([7] * 400, 7, grid, merge_size=2)
    expected = r'has 391 image tokens \(id 7\) but image_grid_thw \[\[1, 40, 40\]\] needs 400'
    with pytest.raises(ValueError, match=expected):
        check_image_token_count([7] * 391, 7, grid, merge_size=2)


# --------------------------------------------------------------------------------------- through ms-swift


@pytest.fixture(scope='module')
def ext_template(tiny_model_dir):
    from swift.model import get_processor
    from swift.template import get_template

    register_checked_templates()
    processor = get_processor(tiny_model_dir, model_type='qwen2_vl')
    return get_template(processor, template_type='qwen2_vl')


def test_stock_name_gives_the_checked_template_with_ms_swift_meta(ext_template):
    from swift.template import TEMPLATE_MAPPING

    assert type(ext_template) is CheckedQwen2VLTemplate
    meta = TEMPLATE_MAPPING['qwen2_vl']
    assert (meta.template_type, meta.default_system) == ('qwen2_vl', 'You are a helpful assistant.')
    assert TEMPLATE_MAPPING['qwen2_5_vl'].template_cls.__name__ == 'CheckedQwen2_5VLTemplate'


def test_registered_template_encodes_with_checked_ids_and_grid(ext_template):
    image = Image.new('RGB', (300, 200), (200, 10, 10))
    messages = [{'role': 'user', 'content': '<image>Where?'}, {'role': 'assistant', 'content': 'Click.'}]
    encoded = ext_template.encode({'messages': messages, 'images': [image]})
    grid = encoded['image_grid_thw']
    assert ext_template.image_token_id == 151655
    assert encoded['input_ids'].count(151655) == int(grid.prod()) // 4 > 0


def test_literal_image_pad_in_text_fails_with_the_count(ext_template):
    image = Image.new('RGB', (300, 200), (200, 10, 10))
    messages = [{'role': 'user', 'content': '<image>see <|image_pad|>'}, {'role': 'assistant', 'content': 'ok'}]
    with pytest.raises(ValueError, match='Image token count mismatch'):
        ext_template.encode({'messages': messages, 'images': [image]})


PLUGIN_LOG = '[swift_ext] checked CheckedQwen2VLTemplate: VisionTokenIds(vision_start=151652'


def test_plain_swift_sft_trains_with_the_plugin_template(tiny_model_dir, sample_jsonl, tmp_path):
    import swift_ext.template.plugin as plugin

    options = tiny_lora_options(tiny_model_dir, sample_jsonl, str(tmp_path))  # --template qwen2_vl, the stock name
    options.update({'max_steps': 1, 'external_plugins': plugin.__file__, 'save_strategy': 'no'})
    output = run_cli(['swift', 'sft', *as_argv(options)], env={'MAX_PIXELS': '50176'})
    assert PLUGIN_LOG in output
    with open(os.path.join(run_dir(str(tmp_path)), 'args.json'), encoding='utf-8') as f:
        assert json.load(f)['template'] == 'qwen2_vl'  # swift infer --adapters needs no plugin to read it back


def test_plain_swift_infer_generates_with_the_plugin_template(tiny_model_dir, sample_jsonl, tmp_path):
    """transformers 4.x generate() broke on ms-swift's full-length position_ids; the checked template drops them."""
    import swift_ext.template.plugin as plugin

    result_path = str(tmp_path / 'infer.jsonl')
    options = {'model': tiny_model_dir, 'model_type': 'qwen2_vl', 'template': 'qwen2_vl',
               'external_plugins': plugin.__file__,
               'val_dataset': f'{sample_jsonl}#2', 'max_new_tokens': 3, 'result_path': result_path,
               'infer_backend': 'transformers'}  # fmt: skip
    output = run_cli(['swift', 'infer', *as_argv(options)], env={'MAX_PIXELS': '50176'})
    assert PLUGIN_LOG in output
    assert len(read_jsonl(result_path)) == 2
