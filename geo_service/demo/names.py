"""Plausible Chinese names and registration codes for the fictional city's features."""

from __future__ import annotations

import numpy as np

CITY = "清河市"

TRADE_NAMES = (
    "宏达", "鑫源", "华峰", "恒昌", "瑞丰", "金泰", "永盛", "嘉禾", "隆鑫", "广源", "天成", "润泽",
    "新特", "祥和", "凯盛", "明远", "博源", "同德", "东升", "汇丰", "信诚", "福瑞", "昌盛", "国泰",
    "兴旺", "宝华", "安达", "众诚", "巨力", "远航", "中和", "正元", "鼎盛", "裕隆", "华星", "长青",
    "旭日", "康泰", "泰和", "万通", "银河", "宇通", "龙腾", "丰源", "德润", "盛世", "海蓝", "佳美",
)  # fmt: skip
INDUSTRIES = (
    "化工",
    "精细化工",
    "化学",
    "农药",
    "化肥",
    "新材料",
    "医药化工",
    "氯碱",
    "染料",
    "涂料",
)
SUFFIXES = ("有限公司", "有限公司", "有限责任公司", "股份有限公司")

SURNAMES = (
    "王",
    "李",
    "张",
    "刘",
    "陈",
    "杨",
    "黄",
    "赵",
    "周",
    "吴",
    "徐",
    "孙",
    "朱",
    "胡",
    "郭",
)
PLACE_WORDS = ("家湾", "家坪", "家岭", "家坝", "家冲", "家河", "家畈")

STREETS_NS = ("人民路", "解放路", "建设路", "中山路", "和平路", "胜利路", "文化路", "光明路",
              "民主路", "新华路", "五一路", "青年路")  # fmt: skip
STREETS_EW = ("长江大道", "清河大道", "朝阳路", "东风路", "团结路", "幸福路", "振兴路", "友谊路",
              "江汉路", "学院路", "工农路", "滨河路")  # fmt: skip

# GB 32100-2015: the 31 characters of a unified social credit code, and the check weights
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
# GB 11714-1997: the organisation code inside it, with its own check character
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def company_names(rng: np.random.Generator, prefixes: list[str]) -> list[str]:
    """One distinct company name per prefix, e.g. ``清河市宏达化工有限公司``."""
    trades = rng.permutation(len(TRADE_NAMES))
    names = []
    for i, prefix in enumerate(prefixes):
        trade = TRADE_NAMES[int(trades[i % len(trades)])]
        industry = INDUSTRIES[int(rng.integers(len(INDUSTRIES)))]
        suffix = SUFFIXES[int(rng.integers(len(SUFFIXES)))]
        names.append(f"{prefix}{trade}{industry}{suffix}")
    return names


def village_names(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct village names such as ``王家湾村``."""
    pairs = [f"{s}{p}村" for s in SURNAMES for p in PLACE_WORDS]
    return [pairs[int(i)] for i in rng.permutation(len(pairs))[:count]]


def credit_code(rng: np.random.Generator, admin_code: str) -> str:
    """A well-formed 18-character unified social credit code of an enterprise in ``admin_code``.

    ``91`` (registered by market regulation, an enterprise), the 6-digit division code, a
    9-character organisation code with its GB 11714 check, and the GB 32100 check character.
    """
    if rng.random() < 0.4:  # codes issued since 2015 start the organisation part with MA
        body = "MA" + "".join(_USCC_CHARS[int(i)] for i in rng.integers(0, 31, size=6))
    else:
        body = "".join(str(int(i)) for i in rng.integers(0, 10, size=8))
    org = body + _org_check(body)
    head = "91" + admin_code + org
    return head + _uscc_check(head)


def _org_check(body: str) -> str:
    total = sum(_char_value(c) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def _char_value(char: str) -> int:
    return int(char) if char.isdigit() else ord(char) - ord("A") + 10


def _uscc_check(head: str) -> str:
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(head, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]
