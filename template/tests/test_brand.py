"""The brand data (brand.toml): it loads, it holds every text, and categories resolve to the right label."""

from __future__ import annotations

from pathlib import Path

import pytest

from brandbot_runtime.brand import Brand, BrandDataError, read_brand_data, words_of
from brandbot_runtime.project_paths import brand_data_file

from .conftest import PROJECT_DIR


def test_project_brand_data_loads_with_every_text(brand: Brand) -> None:
    assert brand.brand_name.strip()
    assert brand.welcome_message.strip()
    for name, wording in brand.texts.model_dump().items():
        assert wording.strip(), f"text {name} is empty"


def test_general_and_missing_categories_answer_directly(brand: Brand) -> None:
    assert brand.specialist_label(None) is None
    assert brand.specialist_label("") is None
    for general in brand.general_categories:
        assert brand.specialist_label(general) is None


def test_specialist_categories_use_their_label(brand: Brand) -> None:
    for category_id, category in brand.categories.items():
        assert brand.specialist_label(category_id) == (category.label or words_of(category_id))


def test_unknown_category_is_announced_with_its_id_in_words(brand: Brand) -> None:
    assert brand.specialist_label("LateDeliveryClaims") == "Late Delivery Claims"


@pytest.mark.parametrize(
    ("category_id", "label"),
    [
        ("OrderTracking", "Order Tracking"),
        ("ProductInquiry", "Product Inquiry"),
        ("VIPSupport", "VIP Support"),
        ("late_refund", "late refund"),
        ("Returns", "Returns"),
        ("billing-2fa", "billing 2fa"),
        ("x" * 100, "x" * 59 + "…"),
    ],
)
def test_words_of_splits_ids(category_id: str, label: str) -> None:
    assert words_of(category_id) == label


def test_specialist_text_replaces_only_the_label_placeholder(brand: Brand) -> None:
    text = brand.texts.model_copy(update={"specialist_transition": "{label} {other} %s ${X}"})
    assert text.specialist("Returns {0}") == "Returns {0} {other} %s ${X}"


def test_brand_data_missing_a_text_names_the_field(tmp_path: Path) -> None:
    source = (PROJECT_DIR / "brand.toml").read_text(encoding="utf-8")
    broken = "\n".join(line for line in source.splitlines() if not line.startswith("error_timeout"))
    path = tmp_path / "brand.toml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(BrandDataError, match=r"texts\.error_timeout: Field required"):
        read_brand_data(path)


def test_missing_brand_data_is_named(tmp_path: Path) -> None:
    with pytest.raises(BrandDataError, match="not found"):
        read_brand_data(tmp_path / "nowhere.toml")


def test_brand_data_file_names_another_brand_data_and_the_old_name_still_works(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert brand_data_file() == PROJECT_DIR / "brand.toml"
    monkeypatch.setenv("BRAND_FILE", str(tmp_path / "old.toml"))
    assert brand_data_file() == tmp_path / "old.toml"
    monkeypatch.setenv("BRAND_DATA_FILE", str(tmp_path / "new.toml"))
    assert brand_data_file() == tmp_path / "new.toml"
