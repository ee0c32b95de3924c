# ruff: noqa: E501  (a string table: one entry per line reads better than wrapped pairs)
"""Every word the counter shows or prints, in Simplified Chinese and English.

One table for the screens, receipts and reports, so a translator works in one file.
``Translator(lang)("key", **values)`` formats a string; a missing key shows itself
(``[key]``) instead of crashing the counter.  :meth:`Translator.problem` turns a
refusal's :class:`~protocol.errors.Problem` into a plain-language line: the Chinese
table keys on the stable problem code and keeps the English detail (with its figures)
in brackets until every message has its own template.
"""

from __future__ import annotations

from protocol.domain import REGISTRY
from protocol.errors import Problem

LANGUAGES = ("zh", "en")

STRINGS: dict[str, tuple[str, str]] = {
    # app, status bar
    "app.title": ("一卡通 收费挂号窗口", "OneCard registration & cashier"),
    "status.online": ("● 在线", "● online"),
    "status.offline": ("○ 离线（本机照常工作）", "○ offline (counter works normally)"),
    "status.pending": ("待同步 {n}", "to sync {n}"),
    "status.last_sync": ("上次同步 {when}", "last sync {when}"),
    "status.never": ("从未同步", "never synced"),
    "status.counter": ("窗口 {node}", "counter {node}"),
    "status.operator": ("操作员 {op}", "operator {op}"),
    "status.no_operator": ("未登录", "not logged in"),
    "status.reader": ("读卡器：{msg}", "reader: {msg}"),
    # login / lock
    "login.title": ("操作员登录", "Operator login"),
    "login.locked_title": ("屏幕已锁定：请重新登录", "Screen locked: log in again"),
    "login.staff_id": ("工号", "Staff id"),
    "login.pin": ("密码（PIN）", "PIN"),
    "login.submit": ("登录", "Log in"),
    "login.no_staff": ("本窗口还没有操作员：请先运行 onecard-edge staff add",
                       "No staff at this counter yet: run `onecard-edge staff add` first"),
    "login.wrong": ("工号或密码错误", "Staff id or PIN is wrong"),
    "login.locked": ("密码错误次数过多，已锁定，请稍后再试或联系主管",
                     "Too many wrong PINs: locked, try later or ask a supervisor"),
    "login.disabled": ("该工号已停用，请联系主管", "This staff id is disabled: ask a supervisor"),
    "login.missing": ("请输入工号和密码", "Enter staff id and PIN"),
    # home
    "home.card_prompt": ("请刷卡，或输入/扫描卡号后按回车",
                         "Tap a card, or type/scan a card number and press Enter"),
    "home.card_placeholder": ("卡号", "card number"),
    "home.waiting": ("等待刷卡…", "Waiting for a card…"),
    "home.need_card": ("请先刷卡或输入卡号", "Tap or enter a card first"),
    "home.loading": ("正在读取…", "Looking up…"),
    "home.cleared": ("已清除", "Cleared"),
    "home.done": ("已完成：{title}，单号 {number}，余额 {balance}",
                  "Done: {title}, number {number}, balance {balance}"),
    "home.done_nonum": ("已完成：{title}，余额 {balance}", "Done: {title}, balance {balance}"),
    "home.printer_warning": ("打印机：{msg}（交易已记账，可在明细中补打）",
                             "Printer: {msg} (the transaction IS recorded; reprint from history)"),
    "home.printed": ("收据已打印", "Receipt printed"),
    "home.card_fault": ("读卡失败：{msg}", "Card could not be read: {msg}"),
    "home.blank_card": ("空白卡：新建患者时输入卡上印的卡号",
                        "Blank card: type its printed number in the new-patient form"),
    # bindings (footer)
    "key.new": ("新建患者", "New patient"),
    "key.deposit": ("充值", "Deposit"),
    "key.charge": ("收费", "Charge"),
    "key.refund": ("退费", "Refund"),
    "key.lost": ("挂失", "Report lost"),
    "key.replace": ("补卡", "Replace card"),
    "key.settle": ("结算", "Settle"),
    "key.credit": ("绿色通道", "Green channel"),
    "key.history": ("明细", "History"),
    "key.report": ("日结", "Daily report"),
    "key.lock": ("锁屏", "Lock"),
    "key.clear": ("清除", "Clear"),
    "key.card": ("卡号", "Card no."),
    "key.confirm": ("确认", "Confirm"),
    "key.cancel": ("取消", "Cancel"),
    "key.submit": ("提交", "Submit"),
    "key.close": ("关闭", "Close"),
    "key.print": ("打印", "Print"),
    "key.prev_day": ("前一天", "Previous day"),
    "key.next_day": ("后一天", "Next day"),
    "key.remove_item": ("删除项目", "Remove item"),
    "key.more": ("数量+1", "Qty +1"),
    "key.less": ("数量-1", "Qty -1"),
    "key.tap_demo": ("模拟刷卡", "Tap demo card"),
    # patient panel
    "panel.patient_id": ("病人号", "Patient no."),
    "panel.name": ("姓名", "Name"),
    "panel.sex_age": ("性别/年龄", "Sex / age"),
    "panel.national_id": ("身份证", "ID number"),
    "panel.phone": ("电话", "Phone"),
    "panel.card": ("卡", "Card"),
    "panel.balance": ("余额", "Balance"),
    "panel.credit": ("绿色通道额度", "Emergency credit"),
    "panel.available": ("可用", "Available"),
    "panel.recent": ("最近业务", "Recent activity"),
    "panel.cards": ("名下卡", "Cards"),
    "panel.none": ("无", "none"),
    "age": ("{n}岁", "{n} y"),
    "card.active": ("正常", "active"),
    "card.lost": ("已挂失", "LOST"),
    "card.replaced": ("已补卡作废", "REPLACED"),
    "card.blocked": ("已冻结", "BLOCKED"),
    "flag.card_lost": ("此卡已挂失：请扣留此卡，核实身份", "This card was reported LOST: keep it, check ID"),
    "flag.card_replaced": ("此卡已被新卡 {new} 取代", "This card was replaced by {new}"),
    "flag.debt": ("欠费 {amount}：请先收回", "Owes {amount}: collect it first"),
    "flag.closed": ("账户已结算；充值后重新启用", "Account settled; a deposit reopens it"),
    "flag.credit": ("绿色通道：可欠费至 {amount}", "Green channel: may go {amount} below zero"),
    "flag.merged": ("已合并到病人 {pid}", "Merged into patient {pid}"),
    # notices: what to do about a conflict central resolved (edge_node.notices)
    "notice.debt": ("欠费 {amount}（{why}）：收费前请先收回", "Owes {amount} from {why} — collect "
                    "before new charges"),
    "notice.debt_paid": ("{why}欠费 {amount} 已还清", "Debt of {amount} from {why} paid"),
    "notice.card_blocked": ("卡 {card} 已被信息科冻结（{why}）：如出示请扣留；有效卡 {active}",
                            "Card {card} blocked by central IT ({why}): keep it if presented; "
                            "valid card {active}"),
    "notice.merged_into": ("档案已合并到 {pid}：请使用该档案", "Record merged into {pid}: use "
                           "that record"),
    "notice.merged_from": ("档案 {pid} 已并入本档案（同一人）", "Record {pid} was merged into this "
                           "one (same person)"),
    "notice.reversed": ("收费 {charge} {amount} 已被信息科撤销（{why}）", "Charge {charge} "
                        "{amount} reversed by central IT ({why})"),
    "notice.accepted": ("信息科已审核{why}，维持原状：{reason}", "Central IT reviewed {why} and "
                        "left it as is: {reason}"),
    "notice.open": ("未决冲突：{why} {amount}，信息科正在核查；接到通知前不要收取此款",
                    "Open conflict: {why} of {amount} — central IT is reviewing; collect "
                    "nothing until told"),
    "notice.open_no_amount": ("未决冲突：{why}，信息科正在核查；接到通知前请勿处理",
                              "Open conflict: {why} — central IT is reviewing; act on "
                              "nothing until told"),
    "why.overdraft": ("离线透支", "an offline overdraft"),
    "why.double_settlement": ("重复结算", "a double settlement"),
    "why.over_refund": ("超额退费", "an over-refund"),
    "why.lost_card_used": ("挂失卡被使用", "a lost card used"),
    "why.double_replacement": ("重复补卡", "a double replacement"),
    "why.duplicate_patient": ("重复建档", "a duplicate registration"),
    "why.merged_record_used": ("合并后旧档案被使用", "the old record used after a merge"),
    "why.other": ("冲突", "a conflict"),
    # forms
    "form.name": ("姓名", "Name"),
    "form.national_id": ("身份证号（18位）", "National ID number (18)"),
    "form.sex": ("性别 M/F", "Sex M/F"),
    "form.birth_date": ("出生日期 YYYY-MM-DD", "Birth date YYYY-MM-DD"),
    "form.phone": ("手机号", "Phone"),
    "form.contact": ("其他联系方式（联系人/地址）", "Other contact (person / address)"),
    "form.card_no": ("卡号", "Card number"),
    "form.first_deposit": ("首次预交金（至少 {fee}）", "First deposit (at least {fee})"),
    "form.amount": ("金额（元，如 100 或 12.50）", "Amount (yuan, e.g. 100 or 12.50)"),
    "form.method": ("支付方式", "Payment method"),
    "form.derived": ("由身份证得出：{sex}，{birth}", "From the ID number: {sex}, born {birth}"),
    "form.search": ("项目代码或名称", "Item code or name"),
    "form.qty": ("数量", "Qty"),
    "form.department": ("科室", "Department"),
    "form.total": ("合计 {total}", "Total {total}"),
    "form.cart_empty": ("尚未添加项目：输入代码或名称后按回车", "No items yet: type a code or name, Enter"),
    "form.refund_amount": ("退费金额", "Refund amount"),
    "form.refund_to": ("退至", "Refund to"),
    "form.approved_by": ("批准人（医生/主管）", "Approved by (doctor / supervisor)"),
    "form.reason": ("原因", "Reason"),
    "form.verified_by": ("身份核实凭证", "Identity checked with"),
    "form.new_card_no": ("新卡号", "New card number"),
    "form.limit": ("额度", "Credit limit"),
    "form.authorised_by": ("授权人", "Authorised by"),
    "form.no_charges": ("没有可退的收费", "No charge left to refund"),
    "form.pick_charge": ("选择要退的收费", "Pick the charge to refund"),
    "form.settle_summary": ("退还全部余额 {amount}，并开具发票", "Return the whole balance {amount} and invoice"),
    "form.required": ("{field}：必填", "{field}: required"),
    "form.contact_required": ("至少填写一种联系方式（手机或其他）",
                              "At least one contact (phone or other) is required"),
    "form.bad_amount": ("金额格式不对：请输入如 100 或 12.50", "Amount: type e.g. 100 or 12.50"),
    "form.zero_amount": ("金额必须大于 0", "Amount must be more than zero"),
    "form.bad_qty": ("数量应为 1–10000 的整数", "Qty is a whole number 1-10000"),
    "form.not_found": ("没有找到项目：{q}", "No item matches {q}"),
    "form.working": ("正在处理…", "Working…"),
    # titles
    "title.new": ("新建患者并发卡", "New patient and card"),
    "title.deposit": ("充值", "Deposit"),
    "title.charge": ("收费", "Charge"),
    "title.refund": ("退费", "Refund"),
    "title.lost": ("挂失", "Report card lost"),
    "title.replace": ("补卡", "Replace card"),
    "title.settle": ("结算退费", "Settlement"),
    "title.credit": ("绿色通道（急救欠费）", "Green channel (emergency credit)"),
    "title.history": ("账户明细", "Account history"),
    "title.report": ("收费员日结", "Cashier daily report"),
    "title.confirm": ("请确认", "Please confirm"),
    # confirmations
    "confirm.new": ("为 {name} 建档，卡号 {card}，收取预交金 {amount}（{method}）？",
                    "Register {name}, card {card}, first deposit {amount} ({method})?"),
    "confirm.deposit": ("向 {name} 的账户充值 {amount}（{method}）？",
                        "Deposit {amount} ({method}) to {name}'s account?"),
    "confirm.charge": ("从 {name} 的预交金扣收 {amount}（{n} 项）？",
                       "Charge {amount} ({n} items) to {name}'s deposit?"),
    "confirm.refund": ("退还收费 {charge} 中的 {amount}，{to}？",
                       "Refund {amount} of charge {charge}, {to}?"),
    "confirm.lost": ("挂失卡 {card}（{name}）？挂失后此卡不能再用。",
                     "Report card {card} ({name}) lost? It can no longer be used."),
    "confirm.replace": ("为 {name} 补发新卡 {new}，旧卡 {old} 作废？余额和记录转到新卡。",
                        "Issue new card {new} to {name}, retiring {old}? Balance and records follow."),
    "confirm.settle": ("结算 {name}：退还 {amount}（{method}），账户关闭？",
                       "Settle {name}: return {amount} ({method}) and close the account?"),
    "confirm.credit": ("给 {name} 开通绿色通道，额度 {amount}？", "Grant {name} emergency credit of {amount}?"),
    "confirm.yes": ("确认 (Y)", "Confirm (Y)"),
    "confirm.no": ("取消 (N)", "Cancel (N)"),
    # errors
    "error.storage": ("账本写入失败：{msg}", "Ledger not written: {msg}"),
    "error.unexpected": ("出现意外错误：{msg}。请在明细中核对后再重试。",
                         "Unexpected error: {msg}. Check the history before retrying."),
    "error.refused": ("未办理：", "Not done: "),
    # receipts
    "receipt.hospital": ("门诊一卡通", "Outpatient OneCard"),
    "receipt.number": ("单号", "No."),
    "receipt.patient": ("病人", "Patient"),
    "receipt.card": ("卡号", "Card"),
    "receipt.balance": ("余额", "Balance"),
    "receipt.time": ("时间", "Time"),
    "receipt.operator": ("操作员", "Operator"),
    "receipt.counter": ("窗口", "Counter"),
    "receipt.keep": ("请妥善保管本收据", "Please keep this receipt"),
    "line.Deposit": ("预交金", "Deposit"),
    "line.Balance returned": ("退还余额", "Balance returned"),
    "line.Credit limit": ("绿色通道额度", "Credit limit"),
    # report
    "report.title": ("收费员日结报表", "Cashier daily report"),
    "report.day": ("营业日 {day}（{start} 至 {end}，{tz}）", "Business day {day} ({start} to {end}, {tz})"),
    "report.counter": ("窗口 {node}", "Counter {node}"),
    "report.operator": ("操作员 {op}", "Operator {op}"),
    "report.all_operators": ("全部操作员", "all operators"),
    "report.generated": ("生成于 {when}", "Generated {when}"),
    "report.deposits": ("预交金收入", "Deposits received"),
    "report.refunds": ("退费", "Refunds"),
    "report.settlements": ("结算退还", "Settlements paid out"),
    "report.charges": ("预交金扣费", "Charges to deposits"),
    "report.count": ("笔数", "count"),
    "report.amount": ("金额", "amount"),
    "report.total": ("合计", "Total"),
    "report.registrations": ("新建档 {n}，发卡 {cards}，挂失 {lost}，补卡 {replaced}，绿色通道 {credit}",
                             "Registrations {n}, cards issued {cards}, lost {lost}, replaced {replaced}, green channel {credit}"),
    "report.expected_cash": ("应有现金（现金收入 − 现金退费 − 现金结算）",
                             "Expected cash in drawer (cash in − cash refunds − cash settlements)"),
    "report.signature": ("收费员签字：________  复核：________", "Cashier: ________  Checked by: ________"),
}

PROBLEMS_ZH: dict[str, str] = {
    "charge.insufficient": "余额不足",
    "card.lost": "此卡已挂失，不能使用：请扣留此卡并核实身份",
    "card.replaced": "此卡已补卡作废，请使用新卡",
    "card.blocked": "此卡已冻结",
    "card.unknown": "本窗口不认识此卡号",
    "card.exists": "该卡号已经发过卡",
    "card.already_replaced": "此卡已经补过卡",
    "card.same_number": "新卡号不能与旧卡相同",
    "card.wrong_patient": "此卡属于其他病人",
    "national_id.length": "身份证号应为18位",
    "national_id.chars": "身份证号应为17位数字加一位数字或X",
    "national_id.birth_date": "身份证号中的出生日期不存在",
    "national_id.checksum": "身份证号校验位不对（可能输错一位）",
    "patient.duplicate_national_id": "此身份证号已建档，请使用原档案",
    "patient.contact_required": "至少需要一种联系方式",
    "patient.sex_mismatch": "性别与身份证号不一致",
    "patient.birth_date_mismatch": "出生日期与身份证号不一致",
    "patient.birth_date": "出生日期不存在",
    "patient.unknown": "本窗口不认识此病人",
    "patient.merged": "此病人档案已合并",
    "deposit.below_registration_fee": "首次预交金不足以支付挂号费",
    "account.closed": "账户已结算：请先充值",
    "refund.exceeds_charge": "退费金额超过该笔收费可退金额",
    "refund.unknown_charge": "本窗口不认识这笔收费",
    "refund.wrong_patient": "这笔收费属于其他病人",
    "settle.owing": "病人欠费，请先收回欠款再结算",
    "settle.already": "账户已经结算过",
    "settle.partial": "结算须退还全部余额",
    "operator.missing": "未登录操作员",
    "amount.format": "金额格式不对",
    "field.format": "格式不对",
    "field.range": "超出范围",
    "field.missing": "缺少必填项",
}


# Event kinds' names and the domain's words (payment methods, refund destinations, identity
# proofs, sex) are declared with the kinds (protocol/): one place for each.
STRINGS.update({f"kind.{k.name}": k.title for k in REGISTRY})
STRINGS.update(REGISTRY.labels)

# Strings by area (each area keeps its own block; all end up in STRINGS).

# finding a patient and an item
_SEARCH: dict[str, tuple[str, str]] = {
    "key.find": ("查找病人", "Find patient"),
    "search.title": ("查找病人（未带卡）", "Find a patient (no card)"),
    "search.help": ("输入病人号、身份证号、手机号（或后4位）、姓名、拼音或拼音首字母（如 zs）；↑↓ 选择，回车打开",
                    "Type a patient no., ID number, phone (or its last 4 digits), name, pinyin or initials (e.g. zs); ↑↓ to choose, Enter to open"),
    "search.placeholder": ("病人号 / 身份证 / 手机 / 姓名 / 拼音", "patient no. / ID / phone / name / pinyin"),
    "search.type": ("请输入查找内容", "Type to search"),
    "search.none": ("没有找到：{q}", "No patient matches {q}"),
    "search.found": ("找到 {n} 位", "{n} found"),
    "search.more": ("只显示前 {n} 位：请再多输入一些", "Showing the first {n}: type more to narrow"),
    "search.merged": ("已合并", "Merged"),
    "search.no_card": ("无卡", "no card"),
    "search.key_down": ("下一位", "Next"),
    "search.key_up": ("上一位", "Previous"),
    "search.flag_opened": ("按查找打开（未读卡）：业务使用其有效卡 {card}",
                           "Opened by search (no card read): businesses use the active card {card}"),
    "search.flag_no_active": ("该病人没有有效卡：仅供查看", "This patient has no active card: for viewing only"),
    "search.flag_lost": ("卡 {card} 已挂失：按 F7 补卡", "Card {card} is reported lost: F7 replaces it"),
    "search.flag_merged": ("档案 {old} 已合并到本档案 {pid}：已打开本档案",
                           "Record {old} was merged into {pid}: showing {pid}"),
    "search.item_placeholder": ("项目代码、名称、拼音或首字母（如 xcg）", "Item code, name, or pinyin / initials (e.g. xcg)"),
    "search.need_active": ("该病人没有有效卡：需要卡的业务不能办理", "This patient has no active card: businesses that need a card cannot be done"),
}

# checks before confirm, refusals in plain words (problem.<code> templates)
_CHECKS: dict[str, tuple[str, str]] = {
}

# the desk: log out, handover, language, layout
_DESK: dict[str, tuple[str, str]] = {
}

# reprint, change, references, card fee, void, item refunds, editing details
_BUSINESS: dict[str, tuple[str, str]] = {
}

# onecard-edge's command line
_CLI: dict[str, tuple[str, str]] = {
}

# the demo and walkthrough
_DEMO: dict[str, tuple[str, str]] = {
}

# moving in from the old system
_IMPORT: dict[str, tuple[str, str]] = {
}

for _block in (_SEARCH, _CHECKS, _DESK, _BUSINESS, _CLI, _DEMO, _IMPORT):
    STRINGS.update(_block)


class Translator:
    """Strings in one language: ``tr("key", n=3)``."""

    def __init__(self, language: str = "zh") -> None:
        self.language = language if language in LANGUAGES else "zh"
        self._i = 0 if self.language == "zh" else 1

    def __call__(self, key: str, **values: object) -> str:
        pair = STRINGS.get(key)
        if pair is None:
            return f"[{key}]"
        text = pair[self._i]
        try:
            return text.format(**values) if values else text
        except (KeyError, IndexError, ValueError):
            return text

    def has(self, key: str) -> bool:
        return key in STRINGS

    def maybe(self, key: str, default: str) -> str:
        return self(key) if key in STRINGS else default

    def problem(self, p: Problem) -> str:
        """One plain-language line for a refusal (the code itself is never shown alone)."""
        if self.language == "en":
            return p.message[:1].upper() + p.message[1:]
        zh = PROBLEMS_ZH.get(p.code)
        return f"{zh}（{p.message}）" if zh else p.message

    def problems(self, problems: list[Problem]) -> str:
        return "\n".join(self.problem(p) for p in problems)
