import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from ginr_cli.errors import GinrError
from ginr_cli.io.checkpoints import fingerprint, load_model, save_model
from ginr_cli.nn.ginr import MambaGINR
from tests.conftest import tiny_config


def test_round_trip_is_bit_exact_and_keeps_the_fingerprint(tmp_path):
    model = MambaGINR(tiny_config(3)).eval()
    fp = save_model(model, tmp_path / "m")
    loaded, fp_loaded = load_model(tmp_path / "m")
    assert fp == fp_loaded == fingerprint(model.state_dict())
    assert loaded.cfg == model.cfg
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    x = torch.rand(1, 1, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.encode(x), model.encode(x))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]


def test_fp16_weights_load_as_float32(tmp_path):
    model = MambaGINR(tiny_config(2))
    save_model(model, tmp_path, dtype=torch.float16)
    assert load_file(str(tmp_path / "model.safetensors"))["positions.lps"].dtype == torch.float16
    loaded, _ = load_model(tmp_path)
    assert loaded.positions.lps.dtype == torch.float32
    torch.testing.assert_close(loaded.positions.lps, model.positions.lps, rtol=1e-3, atol=1e-3)


def test_different_weights_give_different_fingerprints():
    a, b = MambaGINR(tiny_config(2)), MambaGINR(tiny_config(2))
    assert fingerprint(a.state_dict()) != fingerprint(b.state_dict())


def test_unknown_config_key_is_refused_by_name(tmp_path):
    save_model(MambaGINR(tiny_config(2)), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["hyponet"]["depth"] = 9
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(GinrError, match="unknown key.*depth"):
        load_model(tmp_path)


def test_missing_and_unexpected_weights_are_named(tmp_path):
    save_model(MambaGINR(tiny_config(2)), tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    del state["positions.lps"]
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(GinrError, match="missing positions.lps; unexpected extra.weight"):
        load_model(tmp_path)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(GinrError, match="no config.json"):
        load_model(tmp_path)
    save_model(MambaGINR(tiny_config(2)), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(GinrError, match="unreadable weights"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    "section,key,value,message",
    [
        ("encoder", "d_model", "256", "config.encoder.d_model: expected an integer, got '256'"),
        ("encoder", "d_model", 0, "config.encoder.d_model: expected at least 1, got 0"),
        ("encoder", "mlp_ratio", float("nan"), "config.encoder.mlp_ratio: expected a number, got nan"),
        ("encoder", "mixer", "rnn", "config.encoder.mixer: expected one of 'mamba', 'attention', got 'rnn'"),
        (None, "rank", 4, "config.rank: expected one of 2, 3, got 4"),
        (None, "input_size", 16.0, "config.input_size: expected an integer, got 16.0"),
        (None, "name", 7, "config.name: expected a string, got 7"),
        ("hyponet", "use_base", "yes", "config.hyponet.use_base: expected true or false, got 'yes'"),
        ("hyponet", "use_base", 1, "config.hyponet.use_base: expected true or false, got 1"),
        ("hyponet", "n_attn_layers", -1, "config.hyponet.n_attn_layers: expected at least 0, got -1"),
        ("latent", "rate_weight", -0.5, "config.latent.rate_weight: expected at least 0, got -0.5"),
        ("encoder", "d_model", 15, "invalid model config: d_model 15 is not a multiple of n_heads 2"),
    ],
)
def test_a_config_value_of_the_wrong_type_or_range_is_refused_by_name(tmp_path, section, key, value, message):
    """Unknown keys were refused, wrong types were not: `"d_model": "256"` crashed building the network."""
    save_model(MambaGINR(tiny_config(2, mixer="attention")), tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    (cfg[section] if section else cfg)[key] = value
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(GinrError) as err:
        load_model(tmp_path)
    assert err.value.message.endswith(message) and err.value.path.name == "config.json", str(err.value)


def test_a_valid_config_keeps_its_values_and_a_whole_number_is_a_real():
    from ginr_cli.nn.config import PRESETS, GINRConfig

    for name, cfg in PRESETS.items():
        assert GINRConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg, name
    data = tiny_config(2).to_dict()
    data["encoder"]["mlp_ratio"] = 4
    assert GINRConfig.from_dict(data).encoder.mlp_ratio == 4.0
