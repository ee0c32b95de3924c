# ruff: noqa: E501  (a string table: one entry per line reads better than wrapped pairs)
"""Every word the counter shows or prints, in Simplified Chinese and English.

One table for the screens, receipts and reports, so a translator works in one file.
``Translator(lang)("key", **values)`` formats a string; a missing key shows itself
(``[key]``) instead of crashing the counter.  :meth:`Translator.problem` turns a
refusal's :class:`~protocol.errors.Problem` into a plain-language line in the staff's
language: the ``problem.<code>`` template filled with the problem's values (amounts in
yuan) and its field's label (``field.<name>``).
"""

from __future__ import annotations

import re
from typing import ClassVar

from protocol.domain import REGISTRY
from protocol.errors import Amount, Problem
from protocol.money import yuan

LANGUAGES = ("zh", "en")

STRINGS: dict[str, tuple[str, str]] = {
    # app, status bar
    "app.title": ("一卡通 收费挂号窗口", "OneCard registration & cashier"),
    "app.title.triage": ("一卡通 分诊台", "OneCard triage desk"),
    "app.title.doctor": ("一卡通 医生工作站", "OneCard doctor's station"),
    "app.title.kiosk": ("一卡通 自助挂号机", "OneCard self-service kiosk"),
    "app.title.lab": ("一卡通 检验检查窗口", "OneCard lab and exam window"),
    "app.title.pharmacy": ("一卡通 药房", "OneCard pharmacy"),
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
    "why.double_cancel": ("医嘱重复撤销", "an order cancelled twice"),
    "why.double_fee": ("重复收取诊查费", "a consultation fee charged twice"),
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
    "form.approver": ("主管工号", "Supervisor id"),
    "form.approver_pin": ("主管密码", "Supervisor PIN"),
    "credit.open": ("已开通绿色通道，额度 {amount}：填 0 可结束", "Green channel open, credit {amount}: type 0 to end it"),
    "confirm.credit_end": ("结束 {name} 的绿色通道？", "End {name}'s green channel?"),
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
    "search.item_placeholder": ("项目：代码/名称/拼音，如 xcg", "Item: code, name or pinyin (xcg)"),
    "search.need_active": ("该病人没有有效卡：需要卡的业务不能办理", "This patient has no active card: businesses that need a card cannot be done"),
}

# checks before confirm, refusals in plain words (problem.<code> templates)
# A refusal reads ``problem.<code>`` (``problem.<code>.<variant>`` when its values name a
# variant) with the Problem's values: {label} is its field's label (``field.<name>``),
# amounts in fen print in yuan.  Codes from every area: add a code's template in your
# own block; tests/test_problem_templates.py checks that every code has one, in both.
_CHECKS: dict[str, tuple[str, str]] = {
    "problem.unknown": ("未办理（原因代码 {code}）", "Not done ({code})"),
    "field.none": ("内容", "Entry"),
    "field.item_n": ("{label}第 {n} 项", "{label} {n}"),
    # field labels (body fields and form fields)
    "field.amount": ("金额", "Amount"),
    "field.approved_by": ("批准人", "Approved by"),
    "field.authorised_by": ("授权人", "Authorised by"),
    "field.birth_date": ("出生日期", "Birth date"),
    "field.card_entry": ("刷卡方式", "Card entry"),
    "field.card_no": ("卡号", "Card number"),
    "field.cards": ("卡号", "Cards"),
    "field.charge_id": ("收费单号", "Charge"),
    "field.code": ("项目代码", "Item code"),
    "field.conflict_id": ("冲突编号", "Conflict"),
    "field.conflict_kind": ("冲突类型", "Conflict type"),
    "field.contact": ("其他联系方式", "Other contact"),
    "field.debit": ("扣款", "Debit"),
    "field.department": ("科室", "Department"),
    "field.first_deposit": ("首次预交金", "First deposit"),
    "field.invoice_no": ("发票号", "Invoice number"),
    "field.items": ("收费项目", "Item"),
    "field.kind": ("业务类型", "Kind of business"),
    "field.limit": ("额度", "Credit limit"),
    "field.medium": ("卡类型", "Card type"),
    "field.merged_id": ("被合并病人号", "Merged patient"),
    "field.method": ("支付方式", "Payment method"),
    "field.moved": ("转移金额", "Amount moved"),
    "field.name": ("姓名", "Name"),
    "field.national_id": ("身份证号", "ID number"),
    "field.new_card_no": ("新卡号", "New card number"),
    "field.old_card_no": ("原卡号", "Old card number"),
    "field.order_ref": ("医嘱号", "Order reference"),
    "field.patient_id": ("病人号", "Patient number"),
    "field.patients": ("病人", "Patients"),
    "field.phone": ("手机号", "Phone"),
    "field.qty": ("数量", "Qty"),
    "field.reason": ("原因", "Reason"),
    "field.receipt_no": ("收据号", "Receipt number"),
    "field.refund_id": ("退费单号", "Refund number"),
    "field.search": ("项目", "Item"),
    "field.sex": ("性别", "Sex"),
    "field.stamp_balance": ("卡上余额", "Card balance"),
    "field.stamp_seq": ("卡上记录序号", "Card stamp number"),
    "field.summary": ("摘要", "Summary"),
    "field.survivor_id": ("保留病人号", "Surviving patient"),
    "field.to": ("退至", "Refund to"),
    "field.unit_price": ("单价", "Unit price"),
    "field.verified_by": ("身份核实凭证", "Identity checked with"),
    # a body's fields (protocol/fields.py)
    "problem.field.missing": ("{label}：必填", "{label}: required"),
    "problem.field.type": ("{label}：类型不对", "{label}: wrong type (expected {expected}, got {got})"),
    "problem.field.range": ("{label}：超出范围", "{label}: out of range"),
    "problem.field.range.above": ("{label}：超过上限 {bound}", "{label}: above the maximum {bound}"),
    "problem.field.range.below": ("{label}：低于下限 {bound}", "{label}: below the minimum {bound}"),
    "problem.field.range.empty": ("{label}：必填", "{label}: required"),
    "problem.field.range.length_above": ("{label}：太长（最多 {bound} 个字符）", "{label}: too long (at most {bound} characters)"),
    "problem.field.range.length_below": ("{label}：太短（至少 {bound} 个字符）", "{label}: too short (at least {bound} characters)"),
    "problem.field.range.count_above": ("{label}：最多 {bound} 项", "{label}: at most {bound} entries"),
    "problem.field.range.count_below": ("{label}：至少 {bound} 项", "{label}: at least {bound} entries"),
    "problem.field.choice": ("{label}：不是可选的值", "{label}: not one of {choices}"),
    "problem.field.format": ("{label}：格式不对", "{label}: not in the expected format"),
    "problem.field.format.phone": ("{label}：格式不对（应为 5–20 位数字，可含空格、- 或开头的 +）", "{label}: not a phone number (5–20 digits; spaces, - and a leading + allowed)"),
    "problem.field.format.date": ("{label}：格式不对（应为 年-月-日，如 1990-03-07）", "{label}: not a date (year-month-day, e.g. 1990-03-07)"),
    "problem.field.format.card_no": ("{label}：格式不对（应为 4–32 位字母或数字）", "{label}: 4 to 32 letters or digits"),
    "problem.field.format.ident": ("{label}：格式不对（应为字母、数字或 . _ -，最多 64 位）", "{label}: letters, digits or . _ - (up to 64)"),
    "problem.field.unknown": ("有无法识别的内容", "{name}: unknown field"),
    "problem.field.unknown.more": ("另有 {n} 项无法识别的内容", "{n} more unknown fields"),
    "problem.kind.unknown": ("本版本不认识此业务", "Unknown kind of business {kind}"),
    "problem.kind.central_only": ("此业务只能由信息科（中心）办理", "{kind} may only be signed by central IT"),
    "problem.kind.not_local": ("此业务不能在窗口办理", "{kind} cannot be done at a counter"),
    "problem.amount.format": ("{label}：金额格式不对，请输入如 100 或 12.50", "{label}: type an amount like 100 or 12.50"),
    "problem.operator.missing": ("未登录操作员", "No operator is logged in"),
    "problem.stamp.incomplete": ("卡上钱包记录不完整", "The wallet stamp is incomplete"),
    # the counter's forms
    "problem.form.required": ("{label}：必填", "{label}: required"),
    "problem.form.amount": ("{label}：金额格式不对，请输入如 100 或 12.50", "{label}: type an amount like 100 or 12.50"),
    "problem.form.zero": ("{label}：必须大于 0", "{label}: must be more than zero"),
    "problem.form.contact": ("至少填写一种联系方式（手机或其他）", "At least one contact (phone or other) is required"),
    "problem.form.cart": ("尚未添加项目：输入代码或名称后按回车", "No items yet: type a code or name, Enter"),
    "problem.form.charge": ("没有可退的收费", "No charge left to refund"),
    # national ID numbers
    "problem.national_id.length": ("身份证号应为 18 位（现为 {n} 位）", "ID number must be 18 characters, got {n}"),
    "problem.national_id.chars": ("身份证号应为 17 位数字加一位数字或 X", "ID number is 17 digits then a digit or X"),
    "problem.national_id.birth_date": ("身份证号中的出生日期 {date} 不存在", "ID number holds an impossible birth date {date}"),
    "problem.national_id.birth_date.too_early": ("身份证号中的出生年份 {year} 太早", "ID number birth year {year} is too early"),
    "problem.national_id.checksum": ("身份证号校验位不对（可能输错一位）", "ID number check digit is wrong (mistyped digit?)"),
    "problem.national_id.format": ("身份证号末位的 X 须大写", "ID number must be stored in capitals"),
    # patients
    "problem.patient.unknown": ("本窗口不认识病人 {patient}", "No patient {patient} is known at this counter"),
    "problem.patient.merged": ("病人 {patient} 的档案已合并到 {into}：请使用该档案", "Patient {patient} was merged into {into}: use that record"),
    "problem.patient.exists": ("病人号 {patient} 已存在", "Patient {patient} already exists"),
    "problem.patient.contact_required": ("至少需要一种联系方式（手机或其他）", "At least one contact (phone or other) is required"),
    "problem.patient.birth_date": ("出生日期：{date} 不是真实的日期", "Birth date: {date} is not a real date"),
    "problem.patient.birth_date_future": ("出生日期：{date} 晚于今天（{today}）", "Birth date: {date} is after today ({today})"),
    "problem.patient.birth_date_too_early": ("出生日期：{date} 早于 {earliest}，请核对", "Birth date: {date} is before {earliest}: check it"),
    "problem.patient.birth_date_mismatch": ("出生日期 {date} 与身份证号中的 {id_date} 不一致", "Birth date {date} differs from the ID number's {id_date}"),
    "problem.patient.sex_mismatch": ("性别与身份证号不一致", "Sex differs from the ID number's"),
    "problem.patient.nothing_to_update": ("没有修改任何资料", "Nothing was changed"),
    "problem.patient.duplicate_national_id": ("此身份证号已建档（病人 {patient}，{name}）：请使用原档案", "This ID number is already registered as patient {patient} ({name}): use that record"),
    "problem.patient.id_moved": ("卡已按病人号 {expected} 写好，但下一个病人号是 {got}：请重新发卡", "The card was written for patient {expected} but the next patient number is {got}: issue again"),
    # cards
    "problem.card.unknown": ("本窗口不认识卡号 {card}", "Card {card} is not known at this counter"),
    "problem.card.wrong_patient": ("卡 {card} 属于其他病人", "Card {card} belongs to another patient"),
    "problem.card.lost": ("卡 {card} 已挂失，不能使用：请扣留此卡并核实身份", "Card {card} was reported lost: keep it and ask for ID"),
    "problem.card.replaced": ("卡 {card} 已补卡作废：请使用新卡 {new}", "Card {card} was replaced by {new}: use the new card"),
    "problem.card.blocked": ("卡 {card} 已冻结", "Card {card} is blocked"),
    "problem.card.exists": ("卡号 {card} 已经发过卡", "Card {card} has already been issued"),
    "problem.card.already_replaced": ("卡 {card} 已经补过卡", "Card {card} was already replaced"),
    "problem.card.same_number": ("新卡号不能与原卡相同", "The new card must have a different number"),
    "problem.card.entry": ("刷卡方式不对", "Card entry must be one of {choices}"),
    "problem.card.write": ("{text}", "{text}"),
    # money
    "problem.deposit.below_registration_fee": ("首次预交金：至少 {fee}（挂号费），现为 {amount}", "First deposit: at least {fee} (the registration fee); got {amount}"),
    "problem.account.closed": ("账户已结算：请先充值", "The account was settled: a new deposit reopens it"),
    "problem.charge.insufficient": ("余额不足：余额 {balance}，本次 {amount}，还差 {short}", "Balance {balance} does not cover {amount}: {short} short"),
    "problem.charge.insufficient.credit": ("余额不足：余额 {balance} 加绿色通道额度 {credit}，本次 {amount}，还差 {short}", "Balance {balance} + credit {credit} does not cover {amount}: {short} short"),
    "problem.charge.insufficient_card": ("按卡上记录余额为 {card_balance}（本机尚未同步的消费；账本为 {balance}）：本次 {amount}，还差 {short}", "The card shows {card_balance} after spending not synced here yet (the records say {balance}): {amount} is {short} short"),
    "problem.charge.insufficient_card.credit": ("按卡上记录余额为 {card_balance}，加绿色通道额度 {credit}（本机尚未同步的消费；账本为 {balance}）：本次 {amount}，还差 {short}", "The card shows {card_balance} + credit {credit} after spending not synced here yet (the records say {balance}): {amount} is {short} short"),
    "problem.charge.total_mismatch": ("项目合计 {total} 与收费金额 {amount} 不符", "Items add up to {total} but the charge says {amount}"),
    "problem.charge.exists": ("收费单号 {charge} 已存在", "Charge {charge} already exists"),
    "problem.refund.unknown_charge": ("本窗口不认识收费 {charge}", "Charge {charge} is not known at this counter"),
    "problem.refund.wrong_patient": ("这笔收费属于其他病人", "That charge belongs to another patient"),
    "problem.refund.exceeds_charge": ("退费金额 {amount} 超过收费 {charge}（{charged}）尚可退的 {left}", "Only {left} of charge {charge} ({charged}) is left to refund; asked {amount}"),
    "problem.settle.owing": ("病人欠费 {debt}：请先收回欠款再结算", "The patient owes {debt}: collect it before settling"),
    "problem.settle.already": ("账户已经结算过", "The account is already settled"),
    "problem.settle.partial": ("结算须退还全部余额 {balance}，而不是 {amount}", "Settlement returns the whole balance {balance}, not {amount}"),
    "problem.settle.card_newer": ("按卡上记录余额为 {card_balance}（本机尚未同步的消费；账本为 {balance}）：请先与中心同步再结算", "The card shows {card_balance} after spending not synced here yet (the records say {balance}): sync with central, then settle"),
    # central's remedies (the console's words; a counter never signs these)
    "problem.debt.debit_over_amount": ("扣款不能超过欠款", "The debit cannot exceed the debt"),
    "problem.merge.same_patient": ("不能把病人合并到自己", "A patient cannot be merged into itself"),
    "problem.raised.patient_not_listed": ("主病人必须在所列病人之中", "The primary patient must be one of the patients listed"),
    "problem.raised.summary_identifies": ("摘要中不得含有身份证号或电话", "The summary must not carry an ID number or phone"),
    # login
    "login.locked": ("密码错误次数过多，已锁定：请 {minutes} 分钟后再试，或联系主管",
                     "Too many wrong PINs: locked, try again in {minutes} min or ask a supervisor"),
    # confirming, with what the dry run found
    "confirm.balance_after": ("办理后余额 {balance}", "Balance after: {balance}"),
    # receipt lines
    "line.refund.deposit": ("退费 {charge}（退回预交金）", "Refund of {charge} to the deposit"),
    "line.refund.cash": ("退费 {charge}（退现金）", "Refund of {charge} in cash"),
}

# the desk: log out, handover, language, layout
_DESK: dict[str, tuple[str, str]] = {
    "key.log_out": ("交班", "Log out"),
    "key.language": ("English", "中文"),  # the language the key switches to
    "key.help": ("帮助", "Help"),
    "key.quit": ("退出", "Quit"),
    "key.blank_card": ("空白卡", "Blank card"),
    "status.offline_short": ("○ 离线", "○ offline"),
    "status.last_sync_short": ("同步 {when}", "synced {when}"),
    "status.never_short": ("未同步过", "never synced"),
    "home.language": ("已切换为中文", "Now in English"),
    "home.blank_on_reader": ("空白卡 {card} 已放上读卡器", "Blank card {card} is on the reader"),
    "form.blank_filled": ("空白卡 {card} 已放上读卡器，卡号已填入", "Blank card {card} is on the reader; its number is filled in"),
    "title.handover": ("交班：本班收款", "Log out: this shift's takings"),
    "handover.note": ("请核对现金后打印（P）并确认交班（Enter）；Esc 返回继续工作",
                      "Count the drawer, print (P), then confirm (Enter); Esc to keep working"),
    "handover.loading": ("正在统计本班业务…", "Adding up this shift…"),
    "handover.confirm": ("确认交班", "Log out"),
    "handover.printed": ("交班单已打印", "Shift slip printed"),
    "handover.not_printed": ("交班单未打印：{msg}", "Shift slip not printed: {msg}"),
    "handover.no_printer": ("本窗口未配置打印机", "no printer configured at this counter"),
    "report.shift_title": ("交班单", "Shift slip"),
    "report.shift": ("班次 {start} 至 {end}（{tz}）", "Shift {start} to {end} ({tz})"),
    "title.keys": ("按键一览", "All keys"),
    "help.language": ("Ctrl+L 切换中文/English：只对本次登录有效，交班后恢复本窗口设定的语言（{lang}）。",
                      "Ctrl+L switches 中文/English for this login only: logging out returns to this counter's language ({lang})."),
    "help.close": ("Esc 或 F1 关闭", "Esc or F1 closes"),
    "lang.zh": ("中文", "Chinese"),
    "lang.en": ("英文", "English"),
    "confirm.quit": ("退出收费程序？（请先交班；退出后本窗口不能收费）",
                     "Quit the counter app? (Log out first; no one can take payments here until it is started again)"),
    "quit.busy": ("正在办理业务，请等待完成后再退出", "A business is being done: wait until it finishes, then quit"),
}

# reprint, change, references, card fee, void, item refunds, editing details
_BUSINESS: dict[str, tuple[str, str]] = {
    "problem.void.other_counter": ("收费 {charge} 是窗口 {node} 收的：只有收费窗口可以作废（请改为退费）", "Charge {charge} was made at counter {node}: only that counter voids it (refund it instead)"),
    "problem.form.nothing_changed": ("没有修改任何内容", "Nothing was changed"),
    "problem.refund.no_amount": ("请输入退费金额或选择项目", "Say how much to refund, or pick items"),
    "problem.refund.no_items": ("请至少选择一项要退的项目", "Pick at least one item to refund"),
    "problem.void.items": ("作废退还整笔收费，不按项目", "A void returns the whole charge, not items"),
    "problem.void.to_deposit": ("作废只能退回预交金", "A void returns the charge to the deposit"),
    "field.line": ("收费明细行", "Charge line"),
    "field.reference": ("交易号", "Reference"),
    "field.tendered": ("实收现金", "Cash tendered"),
    "field.void": ("作废标记", "Void mark"),
    # receipts
    "receipt.reprint": ("（补打）", "(REPRINT)"),
    "receipt.reprinted": ("补打", "Reprinted"),
    "receipt.method": ("支付方式", "Paid by"),
    "receipt.tendered": ("实收", "Tendered"),
    "receipt.change": ("找零", "Change"),
    "receipt.reference": ("交易号", "Reference"),
    "receipt.of_charge": ("原收费单号", "Charge no."),
    "receipt.refund_to": ("退至", "Refunded to"),
    "line.Card fee": ("工本费", "Card fee"),
    "line.Refund": ("退费", "Refund"),
    "line.Void": ("作废退回", "Void"),
    # reprint (history)
    "key.reprint": ("补打收据", "Reprint"),
    "history.reprinted": ("已补打：{number}", "Reprinted: {number}"),
    "history.reprint_saved": ("补打收据已生成（未配置打印机）：{number}",
                              "Reprint made (no printer configured): {number}"),
    "history.void": ("作废", "Void"),
    "history.business": ("业务", "Business"),
    "history.detail": ("内容", "Detail"),
    "history.no_receipt": ("这一行没有收据可补打", "This entry has no receipt to reprint"),
    "history.changed": ("{field}：{old} → {new}", "{field}: {old} → {new}"),
    "history.empty_value": ("（空）", "(empty)"),
    # deposit: cash tendered and change, payment reference
    "form.tendered": ("实收现金（元，可不填）", "Cash tendered (yuan, optional)"),
    "form.change": ("找零 {change}", "Change {change}"),
    "form.reference": ("交易号（银行卡/移动支付流水号）", "Reference (card / mobile transaction no.)"),
    "form.tendered_short": ("实收 {tendered} 少于金额 {amount}", "Tendered {tendered} is less than {amount}"),
    "confirm.tendered": ("实收 {tendered}，找零 {change}。", "Tendered {tendered}, change {change}."),
    "confirm.reference": ("交易号 {reference}。", "Reference {reference}."),
    # card fee
    "confirm.card_fee": ("另收工本费 {fee}。", "Card fee {fee} is charged."),
    # void
    "key.void": ("当日作废", "Void today's charge"),
    "title.void": ("当日收费作废", "Void a charge of today"),
    "form.pick_void": ("选择本窗口今天的收费（未退过费）", "Pick a charge made here today (nothing refunded yet)"),
    "form.no_void": ("今天没有可作废的收费", "No charge of today left to void"),
    "confirm.void": ("作废收费 {charge}，{amount} 全额退回预交金？",
                     "Void charge {charge}: all {amount} back to the deposit?"),
    # item refunds
    "form.refund_items": ("退哪些项目：↑↓ 选行，+/- 改退费数量", "Items to refund: ↑↓ pick a line, +/- the quantity"),
    "form.refund_total": ("退费合计 {total}", "Refund total {total}"),
    "form.refund_none": ("未选项目：按金额退费", "No item picked: refund by amount"),
    "form.refund_col_item": ("项目", "Item"),
    "form.refund_col_charged": ("收费数量", "Charged"),
    "form.refund_col_left": ("可退", "Left"),
    "form.refund_col_pick": ("退", "Refund"),
    "confirm.refund_items": ("退还收费 {charge} 中的 {n} 个项目共 {amount}，{to}？",
                             "Refund {n} item(s) of charge {charge}, {amount}, {to}?"),
    # editing patient details
    "key.edit": ("修改资料", "Edit details"),
    "title.edit": ("修改病人资料", "Edit patient details"),
    "form.address": ("其他联系方式/地址", "Other contact / address"),
    "form.nothing_changed": ("没有修改任何内容", "Nothing was changed"),
    "confirm.edit": ("修改 {name} 的资料：{changes}？", "Change {name}'s details: {changes}?"),
    # refusals
    "problem.deposit.reference_required": ("银行卡或移动支付须填写交易号", "A bank card or mobile payment needs its reference"),
    "problem.deposit.tendered_short": ("实收 {tendered} 少于金额 {amount}", "Tendered {tendered} is less than {amount}"),
    "problem.deposit.tendered_not_cash": ("只有现金才有实收和找零", "Only cash is tendered"),
    "problem.card_fee.insufficient": ("账户可用 {balance}，不够支付工本费 {fee}：请先充值", "The account has {balance} available, not enough for the card fee {fee}: take a deposit first"),
    "problem.card_fee.first_deposit": ("首次预交金须同时支付挂号费和工本费：至少 {least}，现为 {amount}", "The first deposit must cover the registration fee and the card fee: at least {least}; got {amount}"),
    "problem.void.not_today": ("只能作废当天的收费", "Only today's charges can be voided"),
    "problem.void.already_refunded": ("这笔收费已退过费或已作废", "This charge was already refunded or voided"),
    "problem.void.whole_charge": ("作废须退还整笔收费", "A void returns the whole charge"),
    "problem.refund.item_exceeds": ("退费数量超过该项目可退数量", "More of an item than is left to refund"),
    "problem.refund.item_unknown": ("该收费没有这一项", "The charge has no such line"),
    "problem.refund.items_amount": ("退费金额与所选项目不符", "The amount does not match the items"),
    "problem.reprint.no_receipt": ("这一行没有收据可补打", "This entry has no receipt to reprint"),
}

# onecard-edge's command line
_CLI: dict[str, tuple[str, str]] = {
}

# the demo and walkthrough
_DEMO: dict[str, tuple[str, str]] = {
    "demo.step.central": ("演示：启动中心（SQLite）…", "demo: starting central (SQLite)…"),
    "demo.step.counters": ("演示：收费窗口和药房窗口在中心登记…",
                           "demo: enrolling the cashier and the pharmacy counter at central…"),
    "demo.step.sync": ("演示：两个窗口同步样例病人…", "demo: both counters sync the sample patients…"),
    "demo.step.offline": ("演示：断网；李梅的卡在两个窗口各扣一次…",
                          "demo: link down; 李梅's card is charged at both counters…"),
    "demo.step.reconnect": ("演示：恢复联网，中心对账…", "demo: link back; central reconciles…"),
    "demo.failed": ("演示未能启动：{error}", "the demo could not start: {error}"),
    "demo.hint": ("演示登录：demo / 1234 · Ctrl+T 模拟刷卡\n"
                  "李梅的卡离线时两窗口各扣一次，透支 {amount}\n"
                  "信息科控制台：另开终端运行 {console}",
                  "Demo login: demo / 1234 · Ctrl+T: tap a card\n"
                  "Offline double spend on 李梅's card: {amount}\n"
                  "IT console, in another terminal: {console}"),
    "walk.central": ("中心：对账服务在 {url} 监听（真实 websocket，双方签名握手）",
                     "central: the reconciler listens on {url} (a real websocket, signed "
                     "handshakes both ways)"),
    "walk.enrolled": ("中心：登记窗口 {node}（{role}），指纹 {fp}",
                      "central: enrolled counter {node} ({role}), fingerprint {fp}"),
    "walk.registered": ("[{node}] 新病人 {name}（{pid}），卡号 {card}，首次预交 {amount} → 余额 {balance}",
                        "[{node}] new patient {name} ({pid}), card {card}, first deposit "
                        "{amount} → balance {balance}"),
    "walk.synced": ("[{node}] 经中心同步，共 {n} 条签名事件：{name}的卡 {card}，余额 {balance}",
                    "[{node}] synced through central, {n} signed events: {name}'s card "
                    "{card}, balance {balance}"),
    "walk.offline": ("\n—— 网络中断：两个窗口都离线，照常工作 ——",
                     "\n—— the link drops: both counters are offline and keep working ——"),
    "walk.charged": ("[{node}] 离线收费 {item} {amount}（本机余额 {before} 够用）→ 余额 {balance}",
                     "[{node}] offline charge {item} {amount} (its ledger shows {before}: "
                     "enough) → balance {balance}"),
    "walk.online": ("\n—— 网络恢复：两个窗口把离线业务同步到中心 ——",
                    "\n—— the link returns: both counters sync their offline work to central ——"),
    "walk.raised": ("中心：对账发现冲突 {cid}：{nodes} 离线各扣一次，合计透支 {amount}",
                    "central: the reconciler raised {cid}: {nodes} each charged offline, "
                    "together overdrawing by {amount}"),
    "walk.tap": ("[{node}] 刷卡时提示：{text}", "[{node}] tapping the card shows: {text}"),
    "walk.reason": ("两窗口离线重复扣款，患者下次来时补交", "double spend while offline; "
                    "the patient pays it at the next visit"),
    "walk.remedy.debt": ("记为欠费", "record the debt"),
    "walk.resolving": ("中心信息科 {op} 处理 {cid}：{remedy}（与 onecard-central conflicts "
                       "resolve 同一代码路径），理由：{reason}",
                       "central IT {op} resolves {cid}: {remedy} (the code path of "
                       "onecard-central conflicts resolve), reason: {reason}"),
    "walk.resolved": ("中心：签发 {events}，冲突已解决", "central: signed {events}; the "
                      "conflict is resolved"),
    "walk.remedy_here": ("[{node}] 收到处理结果：余额 {balance}，刷卡时提示：{text}",
                         "[{node}] received the remedy: balance {balance}, tapping the card "
                         "shows: {text}"),
    "walk.verified": ("[{node}] 校验账本：{n} 条事件，链与签名完好",
                      "[{node}] ledger verified: {n} events, every chain and signature intact"),
    "walk.done": ("\n完成：冲突在中心提出并已解决，两个窗口余额一致，患者欠费 {amount}。",
                  "\ndone: the conflict was raised at central and resolved; both counters "
                  "agree, the patient owes {amount}."),
    "walk.failed": ("出错了：{error}", "SOMETHING IS WRONG: {error}"),
    "walk.kept": ("文件保留在 {dir}（例如：onecard-central --config {dir}/central/central.toml "
                  "conflicts list --all）", "files kept in {dir} (e.g. onecard-central "
                  "--config {dir}/central/central.toml conflicts list --all)"),
    "walk.keep_not_empty": ("{dir} 不是空目录：请换一个新目录", "{dir} is not empty: give a new "
                            "folder"),
}

# moving in from the old system (onecard-central import; central/importer.py)
_IMPORT: dict[str, tuple[str, str]] = {
    "field.batch_id": ("导入批次", "Import batch"),
    "field.old_patient_no": ("旧系统病历号", "Old system patient no."),
    "field.last_activity": ("旧系统最后业务日期", "Last activity in the old system"),
    "problem.opening.last_activity": ("{label}：{date} 不是真实的日期", "{label}: {date} is not a real date"),
    "import.error": ("第 {line} 行，{column}：{message}", "line {line}, {column}: {message}"),
    "import.row_error": ("第 {line} 行：{message}", "line {line}: {message}"),
    "import.required": ("必填，不能为空", "required, but empty"),
    "import.sex": ("{value} 不是性别：填 M 或 F（男/女）", "{value} is not a sex: write M or F (男/女)"),
    "import.sex_or_id": ("没有身份证号时必填（M 或 F）", "required when there is no national ID (M or F)"),
    "import.birth_or_id": ("没有身份证号时必填（YYYY-MM-DD）", "required when there is no national ID (YYYY-MM-DD)"),
    "import.phone": ("{value} 不是电话号码：5–20 位数字，可带 + 和空格", "{value} is not a phone number: 5–20 digits, maybe a + and spaces"),
    "import.card_no": ("{value} 不是卡号：4–32 位字母或数字", "{value} is not a card number: 4–32 letters or digits"),
    "import.date": ("{value} 不是日期：应为 YYYY-MM-DD", "{value} is not a date: write YYYY-MM-DD"),
    "import.future": ("{value} 在今天之后", "{value} is after today"),
    "import.balance_format": ("{value} 不是金额：应为元，如 123.45", "{value} is not an amount: write yuan, e.g. 123.45"),
    "import.balance_negative": ("{value} 是负数：余额不能为负（欠费请在旧系统结清后再导入）", "{value} is negative: a balance cannot be below zero (settle the debt in the old system first)"),
    "import.balance_decimals": ("{value} 超过两位小数：金额精确到分", "{value} has more than 2 decimals: amounts are in fen"),
    "import.balance_too_large": ("{value} 超过单笔上限 {limit}", "{value} is more than the limit {limit}"),
    "import.repeat": ("{value} 与第 {other} 行重复", "{value} repeats line {other}"),
    "import.card_taken": ("卡号 {value} 已发给患者 {pid}", "card {value} is already issued (patient {pid})"),
    "import.id_taken": ("身份证号 {value} 已登记为患者 {pid}", "national ID {value} is already registered (patient {pid})"),
    "import.columns": ("本行有 {got} 列，表头有 {want} 列（引号没配对？）", "this line has {got} columns, the header {want} (unbalanced quotes?)"),
    "import.no_file": ("没有文件 {path}", "no such file: {path}"),
    "import.unreadable": ("无法读取 {path}：{why}", "cannot read {path}: {why}"),
    "import.not_utf8": ("{path} 不是 UTF-8 编码（第 {line} 行）：请另存为 UTF-8（如 iconv -f GBK -t UTF-8）", "{path} is not UTF-8 (line {line}): save it as UTF-8 (e.g. iconv -f GBK -t UTF-8)"),
    "import.not_csv": ("{path} 不是 CSV 文件：{why}", "{path} is not a CSV file: {why}"),
    "import.empty": ("{path} 没有表头行", "{path} has no header row"),
    "import.missing_columns": ("表头缺少列：{columns}（见 docs/import.md）", "the header lacks column(s): {columns} (see docs/import.md)"),
    "import.duplicate_column": ("表头中 {column} 出现了两次", "the header names {column} twice"),
    "import.ignored_columns": ("忽略的列：{columns}", "ignored column(s): {columns}"),
    "import.bad_operator": ("--operator 应为 1–64 个字符", "--operator must be 1–64 characters"),
    "import.bad_batch": ("--batch-rows 应为 1–{max}", "--batch-rows must be 1–{max}"),
    "import.errors": ("{errors} 处错误，涉及 {lines} 行：未导入任何数据", "{errors} error(s) in {lines} line(s): nothing imported"),
    "import.changed": ("导入期间其他窗口改变了数据（已导入的行保留）：请重新运行以完成", "other nodes changed the data during the import (lines imported so far stay): run it again to finish"),
    "import.stopped": ("导入中断：{why}。已导入的行保留：请重新运行以完成", "the import stopped: {why}. Lines imported so far stay: run it again to finish"),
    "import.key_mismatch": ("中心密钥与库中登记的不一致：{why}", "central's key does not match the store: {why}"),
    "import.summary.file": ("文件        {path}", "file        {path}"),
    "import.summary.rows": ("行数        {n}", "rows        {n}"),
    "import.summary.skipped": ("已导入过    {n}（跳过）", "already in  {n} (skipped)"),
    "import.summary.patients": ("患者        {n}", "patients    {n}"),
    "import.summary.cards": ("卡          {n}", "cards       {n}"),
    "import.summary.total": ("期初余额    {amount}", "opening     {amount}"),
    "import.summary.batch": ("批次        {batch}", "batch       {batch}"),
    "import.summary.events": ("中心签名事件 {n}", "events      {n} signed by central"),
    "import.dry_run": ("试运行：检查通过，未写入任何数据", "dry run: all lines check out; nothing written"),
    "import.done": ("已导入；各窗口同步后即可使用", "imported; counters see it once they sync"),
    "import.nothing": ("没有新数据要导入", "nothing new to import"),
    "report.opening": ("期初余额（旧系统转入）", "Opening balances (moved in)"),
}

# TLS to central (the sync daemon's last error: the status line, onecard-edge info)
_TLS: dict[str, tuple[str, str]] = {
    "sync.tls_pin_mismatch": (
        "中心的 TLS 证书与配置中固定的不符，已拒绝连接（收到 {got}，应为 {want}）："
        "请联系信息科核对 [sync] tls_pin",
        "central's TLS certificate is not the pinned one: refused (got {got}, pinned "
        "{want}); ask IT to check [sync] tls_pin"),
    "sync.tls_untrusted": (
        "中心的 TLS 证书未通过验证：{why}；请联系信息科检查 [sync] ca_file 或 tls_pin",
        "central's TLS certificate is not trusted: {why}; ask IT to check [sync] ca_file "
        "or tls_pin"),
    "sync.tls_failed": (
        "与中心的 TLS 连接失败：{why}；中心是否以 wss:// 服务（tls_cert/tls_key）？",
        "TLS with central failed: {why}; does central serve wss:// (its tls_cert/tls_key)?"),
    "sync.tls_reset": ("握手时连接被断开（{why}）", "the connection was dropped during the "
                       "handshake ({why})"),
    "sync.not_tls": (
        "中心没有按 ws:// 应答（{why}）：中心可能以 wss:// 服务，请把 [sync] central_url "
        "改为 wss://",
        "central did not answer as ws:// ({why}): it may serve wss://; set [sync] "
        "central_url to wss://…"),
}

# dormant accounts (onecard-central dormant; central/dormant.py, protocol/dormant.py)
_DORMANT: dict[str, tuple[str, str]] = {
    "field.dormant_batch": ("久悬结清批次", "Dormant batch"),
    "field.idle_since": ("最后业务日期", "Idle since"),
    "field.selected_by": ("选定人", "Selected by"),
    "problem.dormant.idle_since": ("{label}：{date} 不是真实的日期", "{label}: {date} is not a real date"),
    "problem.dormant.same_person": ("批准人不能是选定人本人（{who}）", "The approver must be another person than the one who selected ({who})"),
    "dormant.report_title": ("久悬账户：余额为正且 {months} 个月无业务（截至 {today}）", "Dormant accounts: positive balance, no activity for {months} months (as of {today})"),
    "dormant.accounts_head": ("病人号                   姓名       电话（遮盖）           余额  最后业务    月数", "patient                  name       phone (masked)        balance  idle since  months"),
    "dormant.band_head": ("按无业务时长（月）    户数            金额", "idle (months)           count          amount"),
    "dormant.band": ("  {band:<20} {n:>6} {amount:>16}", "  {band:<20} {n:>6} {amount:>16}"),
    "dormant.total": ("合计 {n} 户，{amount}", "total {n} account(s), {amount}"),
    "dormant.skipped": ("{n} 个事件无法读取或本版本不认识，未计入（信息科的冲突列表中有标记）", "{n} event(s) unreadable or of a newer version were left out (flagged in the conflict list)"),
    "dormant.csv_written": ("已写入 {path}：{n} 户，含联系方式，用于通知患者", "wrote {path}: {n} account(s) with contact details, for notifying the patients"),
    "dormant.csv_phones": ("注意：此文件含明文电话号码（身份证号已遮盖）：仅供财务通知使用，用后删除", "note: this file holds phone numbers in clear (national IDs masked): for finance's notification only; delete it after use"),
    "dormant.csv_unwritable": ("无法写入 {path}：{why}", "cannot write {path}: {why}"),
    "dormant.bad_months": ("--months 应为 1–600", "--months must be 1–600"),
    "dormant.bad_chunk": ("--chunk 应为 1–{max}", "--chunk must be 1–{max}"),
    "dormant.bad_operator": ("--operator 应为 1–64 个字符（您的工号）", "--operator must be 1–64 characters (your staff id)"),
    "dormant.no_file": ("没有文件 {path}", "no such file: {path}"),
    "dormant.unreadable": ("无法读取 {path}：{why}（应为 UTF-8 CSV）", "cannot read {path}: {why} (a UTF-8 CSV is expected)"),
    "dormant.select_empty": ("选定文件没有表头行", "the selection file has no header row"),
    "dormant.select_columns": ("选定文件表头缺少列：{columns}（用 dormant report --csv 生成的文件）", "the selection file's header lacks column(s): {columns} (use the file dormant report --csv wrote)"),
    "dormant.select_not_csv": ("选定文件不是 CSV：{why}", "the selection file is not a CSV file: {why}"),
    "dormant.select_refused": ("{n} 行有问题：未建立批次", "{n} line(s) refused: no batch made"),
    "dormant.select_nothing": ("选定文件中没有账户", "the selection file lists no account"),
    "dormant.select_raced": ("其中有账户刚被另一个批次选定：请重新运行", "an account was just put in another batch: run it again"),
    "dormant.line": ("第 {line} 行：{message}", "line {line}: {message}"),
    "dormant.line_columns": ("列数不够", "too few columns"),
    "dormant.line_balance": ("{value} 不是金额（元，如 123.45）", "{value} is not an amount (yuan, e.g. 123.45)"),
    "dormant.line_repeat": ("{pid} 与第 {other} 行重复", "{pid} repeats line {other}"),
    "dormant.line_no_balance": ("{pid} 没有余额（或没有此患者）：不是久悬账户", "{pid} has no balance (or no such patient): not dormant"),
    "dormant.line_active": ("{pid} 不是久悬账户：{day} 有业务，仅 {m} 个月无业务，不足 {n} 个月", "{pid} is not dormant: activity on {day}, idle {m} month(s), fewer than {n}"),
    "dormant.line_balance_changed": ("{pid} 的余额已变：文件中 {file}，现在 {now}", "{pid}'s balance changed: {file} in the file, {now} now"),
    "dormant.line_in_batch": ("{pid} 已在未完成的批次 {batch} 中", "{pid} is already in open batch {batch}"),
    "dormant.batch_made": ("已建立待批准批次 {batch}：{n} 户，{amount}（选定人 {who}）", "made pending batch {batch}: {n} account(s), {amount} (selected by {who})"),
    "dormant.batch_next": ("请由另一位主管批准：onecard-central dormant approve {batch} --operator 工号", "a supervisor other than you approves it: onecard-central dormant approve {batch} --operator STAFF"),
    "dormant.no_batch": ("没有批次 {batch}（dormant list 列出所有批次）", "no batch {batch} (dormant list shows them all)"),
    "dormant.approve_own": ("不能批准自己选定的批次 {batch}（选定人 {who}）：须由另一位主管批准", "you cannot approve batch {batch} you selected yourself ({who}): another supervisor must"),
    "dormant.approve_settled": ("批次 {batch} 已结清", "batch {batch} is already settled"),
    "dormant.approve_cancelled": ("批次 {batch} 已取消", "batch {batch} was cancelled"),
    "dormant.approve_moved": ("批次 {batch} 中有 {n} 户在选定后有变动：未批准，未结清任何账户。请取消此批次并重新选定", "{n} account(s) of batch {batch} moved since selection: not approved, nothing settled. Cancel the batch and select again"),
    "dormant.moved_balance": ("{pid}：余额已从 {was} 变为 {now}", "{pid}: balance {was} when selected, {now} now"),
    "dormant.moved_activity": ("{pid}：选定时最后业务为 {was}，之后于 {now} 有新业务", "{pid}: idle since {was} when selected, activity on {now} since"),
    "dormant.moved_invalid": ("{pid}：无法签署结清事件：{now}", "{pid}: its settlement cannot be signed: {now}"),
    "dormant.key_mismatch": ("中心密钥与库中登记的不一致：{why}", "central's key does not match the store: {why}"),
    "dormant.stopped": ("结清中断：{why}。已结清的账户保留：再次运行 dormant approve {batch} 以完成", "settling stopped: {why}. Accounts settled so far stay: run dormant approve {batch} again to finish"),
    "dormant.approved": ("批次 {batch} 已由 {who} 批准：本次结清 {n} 户，{amount}（中心签名事件，各窗口同步后可见）", "batch {batch} approved by {who}: {n} account(s) settled now, {amount} (events signed by central; counters see them once they sync)"),
    "dormant.batch_total": ("批次共 {n} 户，{amount}，状态：{status}", "batch: {n} account(s), {amount}, status: {status}"),
    "dormant.cancelled": ("批次 {batch} 已由 {who} 取消", "batch {batch} cancelled by {who}"),
    "dormant.cancel_approved": ("批次 {batch} 已批准、正在结清，不能取消：再次运行 dormant approve {batch} 以完成", "batch {batch} is approved and settling; it cannot be cancelled: run dormant approve {batch} to finish"),
    "dormant.cancel_settled": ("批次 {batch} 已结清，不能取消", "batch {batch} is settled; it cannot be cancelled"),
    "dormant.cancel_cancelled": ("批次 {batch} 已取消", "batch {batch} is already cancelled"),
    "dormant.list_head": ("批次                             状态         户数             金额  选定 / 批准", "batch                            status      count           amount  selected / approved"),
    "dormant.list_count": ("共 {n} 个批次", "{n} batch(es)"),
    "dormant.show_head": ("批次 {batch}  {status}  （{months} 个月无业务）", "batch {batch}  {status}  (no activity for {months} months)"),
    "dormant.show_people": ("选定 {created}（{at}）  批准 {approved}（{approved_at}）", "selected by {created} ({at})  approved by {approved} ({approved_at})"),
    "dormant.status.pending": ("待批准", "pending"),
    "dormant.status.approved": ("结清中", "settling"),
    "dormant.status.settled": ("已结清", "settled"),
    "dormant.status.cancelled": ("已取消", "cancelled"),
    "dormant.item.pending": ("待结清", "to settle"),
    "dormant.item.settled": ("已结清", "settled"),
    "dormant.item.moved": ("有变动，未结清", "moved, not settled"),
    "dormant.item.cancelled": ("已取消", "cancelled"),
}

# backups and recovery (edge_node/backup.py; a ledger getting its own chain back)
_BACKUP: dict[str, tuple[str, str]] = {
    "problem.ledger.recovering": ("正在从中心恢复：本窗口自己的记录已恢复到第 {seq} 条，共 {held} 条；请保持同步运行，恢复完成后才能办理业务", "Recovering from central: this counter's own events are back to seq {seq} of {held}; keep its sync running: no new business until they are all back"),
    "status.recovering": ("正在从中心恢复…", "recovering from central…"),
    "problem.ledger.recover_pending": ("正在从中心恢复：本窗口的账本刚从备份恢复或重新安装，尚未连上中心；请先启动同步，恢复完成后才能办理业务", "Recovering from central: this ledger was restored or re-installed and has not reached central yet; start its sync (onecard-edge sync, or onecard-edge recover)"),
}

# -- the day close (日结 确认): protocol/dayclose.py, the report screen -----------------
_AUDIT: dict[str, tuple[str, str]] = {
    "key.close_day": ("日结确认", "Close day"),
    "field.day": ("营业日", "Business day"),
    "field.start_ms": ("营业日开始", "Day start"),
    "field.end_ms": ("营业日结束", "Day end"),
    "field.cashier": ("收费员", "Cashier"),
    "field.figures": ("日结各项", "Report figures"),
    "field.section": ("栏目", "Section"),
    "field.count": ("笔数", "Count"),
    "field.expected_cash": ("应有现金", "Cash expected"),
    "field.counted_cash": ("实点现金", "Cash counted"),
    "field.note": ("备注", "Note"),
    "close.title": ("日结确认 {day}（{who}）", "Close the day {day} ({who})"),
    "close.expected": ("应有现金  {amount}", "Cash expected  {amount}"),
    "close.counted": ("实点现金（元）", "Cash counted (yuan)"),
    "close.difference": ("差额      {amount}", "Difference     {amount}"),
    "close.over": ("（长款）", " (over)"),
    "close.short": ("（短款）", " (short)"),
    "close.even": ("（相符）", " (balanced)"),
    "close.hint": ("Enter 确认  Esc 取消", "Enter confirm  Esc cancel"),
    "close.question": ("确认日结 {day}：应有现金 {expected}，实点 {counted}，差额 {difference}？签名后同步至中心，不可修改。",
                       "Close {day}: cash expected {expected}, counted {counted}, difference {difference}? It is signed and synced to central; it cannot be changed."),
    "close.done": ("已日结确认 {day}（{node} #{seq}），差额 {difference}", "Day {day} closed ({node} #{seq}), difference {difference}"),
    "close.bad_amount": ("请输入实点现金，如 1250 或 1250.50", "type the cash counted, like 1250 or 1250.50"),
    "problem.close.day": ("{label}：{date} 不是真实的日期", "{label}: {date} is not a real date"),
    "problem.close.span": ("营业日的结束须晚于开始", "the business day must end after it starts"),
    "problem.close.figure_twice": ("日结中同一行出现两次", "a report line appears twice in the close"),
    "problem.close.expected_cash": ("应有现金 {expected} 与现金各项合计 {cash} 不符", "the expected cash {expected} is not the cash lines' {cash}"),
}

# -- the patient's journey: catalogue, visits and queues, the doctor's station (issue 13) --
_CLINIC = {
    "problem.allergy.not_recorded": ("没有记录对 {substance} 过敏", "no allergy to {substance} is recorded"),
    "problem.allergy.substance": ("请填写过敏物质", "name the substance"),
    "problem.catalogue.dose_limits": ("每日最大剂量小于单次最大剂量", "the daily maximum is below the single maximum"),
    "problem.catalogue.entry_twice": ("同一页中有重复条目", "an entry appears twice in one page"),
    "problem.catalogue.none": ("本机还没有价目表：下次同步时会收到", "this counter holds no catalogue yet: it arrives with the next sync"),
    "problem.catalogue.price": ("{code} 在价目表中为 {price}，不是 {amount}", "{code} costs {price} in the catalogue, not {amount}"),
    "problem.catalogue.stale": ("按第 {version} 版价目表计价，本机现用第 {current} 版：请重新计价", "priced from catalogue version {version}, but this counter uses version {current}: price it again"),
    "problem.catalogue.unknown_item": ("价目表中没有项目 {code}", "{code} is not in the catalogue for this"),
    "problem.order.allergy": ("{item}：患者有 {substance} 过敏史，不能开", "{item}: the patient is recorded as allergic to {substance}"),
    "problem.order.charge_setting": ("本院规定医嘱的扣费时机与此不符", "this hospital charges orders at another time"),
    "problem.order.charge_setting.send": ("本院规定开单即扣费", "this hospital charges orders when they are sent"),
    "problem.order.charge_setting.execution": ("本院规定执行时扣费", "this hospital charges orders when they are executed"),
    "problem.order.charged": ("医嘱要么全额扣费，要么不扣", "an order is charged in full or not at all"),
    "problem.order.dose_daily": ("{item}：每日 {dose} 超过最大日剂量 {max}", "{item}: {dose} a day is above the maximum {max}"),
    "problem.order.dose_missing": ("{item}：请填写单次剂量、每日次数和天数", "{item}: give the dose, how often a day and for how many days"),
    "problem.order.dose_single": ("{item}：单次 {dose} 超过最大单次剂量 {max}", "{item}: {dose} a time is above the maximum {max}"),
    "problem.order.exists": ("医嘱 {order} 已存在", "order {order} already exists"),
    "problem.order.line_twice": ("同一医嘱中项目重复", "an item appears twice in one order"),
    "problem.order.not_cancellable": ("医嘱 {order} 状态为 {status}，不能撤销", "order {order} is {status}: it cannot be cancelled"),
    "problem.order.refund": ("撤销应退回已扣的 {left}，不是 {amount}", "cancelling returns what it charged, {left}, not {amount}"),
    "problem.order.total": ("各项合计 {total}，医嘱金额却为 {amount}", "the lines add up to {total}, but the order says {amount}"),
    "problem.order.unknown": ("本机不知道医嘱 {order}", "order {order} is not known at this counter"),
    "problem.order.wrong_patient": ("医嘱 {order} 属于其他患者", "order {order} is another patient's"),
    "problem.stock.below_zero": ("{code}：库存只有 {have}，不能减去 {qty}", "{code}: {have} on hand, cannot take {qty}"),
    "problem.stock.zero": ("调整数量不能为 0", "an adjustment changes the stock"),
    "problem.approval.required": ("须由主管输入工号和密码批准", "a supervisor must approve with their id and PIN"),
    "problem.approval.required.cash_refund": ("退现金须由主管输入工号和密码批准", "a cash refund needs a supervisor's approval: their id and PIN"),
    "problem.approval.required.above": ("退回预交金超过 {threshold} 须由主管输入工号和密码批准", "a refund above {threshold} needs a supervisor's approval: their id and PIN"),
    "problem.approval.required.cash_settle": ("结算退现金须由主管输入工号和密码批准", "settling in cash needs a supervisor's approval: their id and PIN"),
    "problem.approval.self": ("须由另一人（主管）批准，不能是操作员本人", "another person must approve: a supervisor, not the operator"),
    "problem.approval.not_supervisor": ("{staff} 不是主管：请主管批准", "{staff} is not a supervisor: ask a supervisor to approve"),
    "problem.approval.wrong": ("主管工号或密码错误", "supervisor id or PIN is wrong"),
    "problem.approval.disabled": ("该主管工号已停用", "that supervisor id is disabled"),
    "problem.approval.locked": ("该主管密码错误次数过多，已锁定 {minutes} 分钟", "too many wrong PINs: that supervisor id is locked for {minutes} min"),
    "problem.credit.above_cap": ("绿色通道额度最多 {cap}，本次 {amount}", "green-channel credit is at most {cap}; asked {amount}"),
    "problem.credit.none_open": ("该病人没有开通绿色通道，无需结束", "this patient has no green channel to end"),
    "problem.visit.already_waiting": ("该病人今天已挂 {dept} 的号 {number}，尚未就诊完", "the patient already has visit {number} to {dept} today, not finished"),
    "problem.visit.no_patient": ("请刷患者的卡或先查找患者", "tap the patient's card or find the patient"),
    "problem.visit.exists": ("该挂号已存在", "this visit already exists"),
    "problem.visit.fee_charged": ("就诊 {visit} 的诊查费已收过", "the consultation fee of visit {visit} was already charged"),
    "problem.visit.fee_code": ("挂号费须注明价目表项目", "a registration fee names its catalogue item"),
    "problem.visit.past_day": ("不能挂 {date} 的号，今天是 {today}", "a visit cannot be registered for {date}, before today ({today})"),
    "problem.visit.queue_taken": ("排队号 {number} 已发出，下一个是 {next}", "queue number {number} was already given; the next is {next}"),
    "problem.visit.step": ("就诊 {visit} 当前为「{status}」，不能进行此操作", "visit {visit} is {status}: not possible now"),
    "problem.visit.unknown": ("本机不知道就诊 {visit}", "visit {visit} is not known at this counter"),
    "problem.visit.unknown_dept": ("{dept} 不是价目表中的临床科室", "{dept} is not a clinic department in the catalogue"),
    "problem.visit.unknown_doctor": ("{doctor} 不是该科室的医生", "{doctor} is not a doctor of this department"),
    "problem.visit.wrong_patient": ("就诊 {visit} 属于其他患者", "visit {visit} is another patient's"),
    "field.active": ("有效", "Active"),
    "field.chip_uid": ("芯片号", "Chip UID"),
    "field.supervisor": ("批准主管", "Supervisor"),
    "field.allergen": ("过敏类别", "Allergy class"),
    "field.batch": ("批号", "Batch"),
    "field.capacity": ("限号", "Capacity"),
    "field.catalogue_version": ("价目表版本", "Catalogue version"),
    "field.channel": ("挂号途径", "Channel"),
    "field.charge_at": ("扣费时机", "Charged when"),
    "field.charged": ("已扣金额", "Charged"),
    "field.days": ("天数", "Days"),
    "field.delta": ("调整数量", "Change"),
    "field.dept": ("科室", "Department"),
    "field.depts": ("科室", "Departments"),
    "field.diagnosis_id": ("诊断号", "Diagnosis no."),
    "field.doctor_id": ("医生", "Doctor"),
    "field.doctors": ("医生", "Doctors"),
    "field.dose": ("单次剂量", "Dose"),
    "field.dose_unit": ("剂量单位", "Dose unit"),
    "field.exec_dept": ("执行科室", "Executing department"),
    "field.fee": ("挂号费", "Fee"),
    "field.fee_code": ("收费项目", "Fee item"),
    "field.form": ("剂型", "Form"),
    "field.icd10": ("疾病编码", "ICD-10 code"),
    "field.insurance": ("医保类别", "Insurance"),
    "field.lines": ("项目", "Items"),
    "field.max_daily": ("最大日剂量", "Maximum daily dose"),
    "field.max_single": ("最大单次剂量", "Maximum single dose"),
    "field.order_id": ("医嘱号", "Order no."),
    "field.page": ("页", "Page"),
    "field.pages": ("页数", "Pages"),
    "field.per_day": ("每日次数", "Times a day"),
    "field.period": ("时段", "Period"),
    "field.pharmacy": ("药房", "Pharmacy"),
    "field.pinyin": ("拼音码", "Pinyin"),
    "field.price": ("单价", "Price"),
    "field.queue_no": ("排队号", "Queue number"),
    "field.queue_tag": ("排队前缀", "Queue tag"),
    "field.reaction": ("过敏反应", "Reaction"),
    "field.refund": ("退回金额", "Refund"),
    "field.room": ("诊室", "Room"),
    "field.sessions": ("出诊安排", "Sessions"),
    "field.source": ("来源", "Source"),
    "field.step": ("操作", "Step"),
    "field.stock_unit": ("库存单位", "Stock unit"),
    "field.strength": ("规格", "Strength"),
    "field.substance": ("过敏物质", "Substance"),
    "field.template": ("模板", "Template"),
    "field.templates": ("模板", "Templates"),
    "field.text": ("内容", "Text"),
    "field.title": ("职称", "Title"),
    "field.total": ("合计", "Total"),
    "field.type": ("类别", "Type"),
    "field.unit": ("单位", "Unit"),
    "field.version": ("版本", "Version"),
    "field.visit_id": ("就诊号", "Visit no."),
    "field.weekday": ("星期", "Weekday"),
}

# the catalogue at central: import from the hospital's CSV, show (central/catalogue.py)
_CATALOGUE: dict[str, tuple[str, str]] = {
    "catalogue.error": ("{file} 第 {line} 行，{column}：{message}", "{file} line {line}, {column}: {message}"),
    "catalogue.row_error": ("{file} 第 {line} 行：{message}", "{file} line {line}: {message}"),
    "catalogue.carried_error": ("沿用第 {version} 版的 {file} {code}，{column}：{message}", "{file} {code} carried over from version {version}, {column}: {message}"),
    "catalogue.no_items": ("{path} 中没有 items.csv（价目项目必须有）", "{path} holds no items.csv (the items are required)"),
    "catalogue.not_text": ("{path} 既不是 UTF-8 也不是 GB18030 编码（第 {line} 行）", "{path} is neither UTF-8 nor GB18030 (line {line})"),
    "catalogue.duplicate_column": ("{path}：表头中 {column} 出现了两次", "{path}: the header names {column} twice"),
    "catalogue.missing_columns": ("{path}：表头缺少列 {columns}（见 docs/catalogue.md）", "{path}: the header lacks column(s) {columns} (see docs/catalogue.md)"),
    "catalogue.integer": ("{value} 不是整数（小数剂量请换用更小的剂量单位，如 mg）", "{value} is not a whole number (for a fractional dose use a smaller dose unit, e.g. mg)"),
    "catalogue.price_format": ("{value} 不是金额：应为元，如 18.50", "{value} is not a price: write yuan, e.g. 18.50"),
    "catalogue.price_negative": ("{value} 是负数：价格不能为负", "{value} is negative: a price cannot be below zero"),
    "catalogue.price_decimals": ("{value} 超过两位小数：价格精确到分", "{value} has more than 2 decimals: prices are in fen"),
    "catalogue.price_too_large": ("{value} 超过上限 {limit}", "{value} is more than the limit {limit}"),
    "catalogue.choice": ("{value} 不是可选的值：应为 {choices}（中文写法见 docs/catalogue.md）", "{value} is not one of {choices} (Chinese words: docs/catalogue.md)"),
    "catalogue.too_long": ("太长：{n} 个字符，最多 {max} 个", "too long: {n} characters, at most {max}"),
    "catalogue.range_above": ("{value} 超过上限 {bound}", "{value} is above the maximum {bound}"),
    "catalogue.range_below": ("{value} 低于下限 {bound}", "{value} is below the minimum {bound}"),
    "catalogue.repeat": ("{value} 与第 {other} 行重复", "{value} repeats line {other}"),
    "catalogue.unknown_dept": ("{value} 不是科室（depts.csv 中没有）", "{value} is not a department (not in depts.csv)"),
    "catalogue.drug_dept": ("{value} 不是药房：药品由药房发药", "{value} is not a pharmacy: a drug is dispensed by a pharmacy"),
    "catalogue.unknown_item": ("{value} 不是价目项目（items.csv 中没有）", "{value} is not an item (not in items.csv)"),
    "catalogue.fee_type": ("{value} 不是挂号费项目", "{value} is not a registration fee item"),
    "catalogue.unknown_doctor": ("{value} 不是医生（doctors.csv 中没有）", "{value} is not a doctor (not in doctors.csv)"),
    "catalogue.template_mixed": ("与同一模板第 {other} 行不同", "differs from line {other} of the same template"),
    "catalogue.template_drug": ("{value} 不是药品：处方模板只能开药品", "{value} is not a drug: a prescription template lists drugs"),
    "catalogue.template_not_drug": ("{value} 是药品：检查检验申请单不能开药品", "{value} is a drug: a requisition lists exams, lab tests and services"),
    "catalogue.template_single": ("{value} 单次 {dose}{unit} 超过最大单次剂量 {max}{unit}", "{value}: {dose} {unit} a time is above its maximum {max} {unit}"),
    "catalogue.template_daily": ("{value} 每日 {dose}{unit} 超过最大日剂量 {max}{unit}", "{value}: {dose} {unit} a day is above its maximum {max} {unit}"),
    "catalogue.errors": ("{errors} 处错误，涉及 {lines} 行：未发布任何内容", "{errors} error(s) in {lines} line(s): nothing published"),
    "catalogue.invalid": ("中心自检未通过（程序错误，请报告）：{why}", "central's own check refused the events (a bug, please report it): {why}"),
    "catalogue.changed": ("导入期间已发布了第 {version} 版：请重新运行", "version {version} was published meanwhile: run it again"),
    "catalogue.bad_note": ("--note 最多 200 个字符", "--note must be at most 200 characters"),
    "catalogue.bad_charge_at": ("--charge-at 应为 {choices}", "--charge-at must be one of {choices}"),
    "catalogue.dry_run": ("试运行：检查通过，未发布任何内容", "dry run: every line checks out; nothing published"),
    "catalogue.done": ("已发布第 {version} 版价目表；各窗口同步后即使用", "catalogue version {version} published; counters use it once they sync"),
    "catalogue.summary.version": ("价目表版本 {version}", "version     {version}"),
    "catalogue.summary.file": ("文件        {path}", "file        {path}"),
    "catalogue.summary.items": ("项目        {n}（{types}）", "items       {n} ({types})"),
    "catalogue.summary.depts": ("科室        {n}", "departments {n}"),
    "catalogue.summary.doctors": ("医生        {n}", "doctors     {n}"),
    "catalogue.summary.sessions": ("出诊安排    {n}", "sessions    {n}"),
    "catalogue.summary.templates": ("模板        {n}", "templates   {n}"),
    "catalogue.summary.carried": ("沿用第 {version} 版：{lists}", "carried over from version {version}: {lists}"),
    "catalogue.summary.charge_at": ("扣费时机    {setting}", "charged     {setting}"),
    "catalogue.summary.note": ("说明        {note}", "note        {note}"),
    "catalogue.summary.pages": ("分页        {n}", "pages       {n}"),
    "catalogue.summary.events": ("中心签名事件 {n}", "events      {n} signed by central"),
    "catalogue.show.none": ("中心尚未发布价目表（onecard-central catalogue import）", "central has published no catalogue yet (onecard-central catalogue import)"),
    "catalogue.show.published": ("发布时间    {when}", "published   {when}"),
    "catalogue.show.incomplete": ("第 {version} 版尚不完整（缺页）", "version {version} is incomplete (pages missing)"),
    "catalogue.list.items": ("项目", "items"),
    "catalogue.list.depts": ("科室", "departments"),
    "catalogue.list.doctors": ("医生", "doctors"),
    "catalogue.list.sessions": ("出诊安排", "sessions"),
    "catalogue.list.templates": ("模板", "templates"),
    "catalogue.charge_at.send": ("开单即扣费", "when sent"),
    "catalogue.charge_at.execution": ("执行时扣费", "when executed"),
    "catalogue.type.registration": ("挂号", "registration"),
    "catalogue.type.consultation": ("诊查", "consultation"),
    "catalogue.type.service": ("服务", "service"),
    "catalogue.type.exam": ("检查", "exam"),
    "catalogue.type.lab": ("检验", "lab"),
    "catalogue.type.drug": ("药品", "drug"),
}

# -- registration and the queue: triage desk, kiosk, cashier key, waiting room (issue 13) --
_QUEUE = {
    "title.visit": ("挂号", "Register a visit"),
    "visit.fee": ("挂号费", "Fee"),
    "visit.fee_line": ("{item} {fee}（余额 {balance}，从预交金扣）", "{item} {fee} (balance {balance}, charged from the deposit)"),
    "visit.no_fee": ("不收挂号费（余额 {balance}）", "no registration fee (balance {balance})"),
    "visit.any_doctor": ("不指定医生（普通号）", "any doctor (general)"),
    "visit.hint": ("↑/↓ 选择科室和医生  Ctrl+S 挂号  Esc 取消", "↑/↓ choose department and doctor  Ctrl+S register  Esc cancel"),
    "confirm.visit": ("为 {name} 挂号：{dept}，{doctor}，挂号费 {fee}？", "Register {name} for {dept}, {doctor}, fee {fee}?"),
    "key.visit": ("挂号", "Visit"),
    "key.call_next": ("叫下一位", "Call next"),
    "key.recall": ("重呼", "Recall"),
    "key.skip": ("过号", "Skip"),
    "key.no_show": ("未到", "No-show"),
    "key.pick_dept": ("选科室", "Department"),
    "queue.col_no": ("号码", "No."),
    "queue.col_name": ("姓名", "Name"),
    "queue.col_doctor": ("医生", "Doctor"),
    "queue.col_status": ("状态", "Status"),
    "queue.col_wait": ("已等", "Waited"),
    "queue.minutes": ("{n} 分", "{n} min"),
    "triage.no_dept": ("未选科室：按 F7 选择", "no department: F7 to choose"),
    "triage.dept": ("科室 {dept}", "Department {dept}"),
    "triage.pick_dept": ("选择本台分诊的科室", "The department this desk serves"),
    "triage.need_dept": ("请先按 F7 选择科室", "choose a department first (F7)"),
    "triage.need_visit": ("请先用 ↑/↓ 选中队列中的患者", "select a visit in the queue first (↑/↓)"),
    "triage.none_waiting": ("没有候诊的患者", "no one is waiting"),
    "triage.counts": ("今日共 {total}：{parts}", "today {total}: {parts}"),
    "triage.tapped": ("F2 挂号", "F2 to register a visit"),
    "triage.registered": ("已挂号：{name} {dept}，排队号 {number}，余额 {balance}", "Registered {name} for {dept}: queue number {number}, balance {balance}"),
    "triage.done_call_next": ("已呼叫 {number}", "called {number}"),
    "triage.done_recall": ("已重呼 {number}", "recalled {number}"),
    "triage.done_skip": ("{number} 已过号", "{number} skipped"),
    "triage.done_no_show": ("{number} 已记为未到", "{number} marked no-show"),
    "kiosk.title": ("自助挂号", "Self-service registration"),
    "kiosk.welcome": ("请刷就诊卡", "Please tap your card"),
    "kiosk.welcome_dept": ("挂号科室：{dept}", "Registration for: {dept}"),
    "kiosk.hello": ("您好，{name}", "Hello, {name}"),
    "kiosk.balance": ("余额 {balance}", "Balance {balance}"),
    "kiosk.pick_dept": ("请按数字键选择科室：", "Press a number to choose the department:"),
    "kiosk.pick_doctor": ("{dept}：请按数字键选择医生：", "{dept}: press a number to choose the doctor:"),
    "kiosk.option": ("{n}  {label}  {fee}", "{n}  {label}  {fee}"),
    "kiosk.confirm": ("挂号：{dept}，{doctor}\n挂号费 {fee}，挂号后余额 {after}", "Register for {dept}, {doctor}\nFee {fee}, balance after {after}"),
    "kiosk.confirm_keys": ("按 Enter 确认挂号    按 Esc 取消", "Enter: register    Esc: cancel"),
    "kiosk.back_keys": ("按 Esc 返回", "Esc: back"),
    "kiosk.working": ("请稍候…", "One moment…"),
    "kiosk.your_number": ("您的号码", "Your number"),
    "kiosk.wait_at": ("请到 {dept} 候诊区等候叫号", "Please wait in the {dept} waiting area until your number is called"),
    "kiosk.done_balance": ("已从预交金扣挂号费 {fee}，余额 {balance}", "Fee {fee} paid from your deposit; balance {balance}"),
    "kiosk.done_keys": ("请取走就诊卡    按 Enter 结束", "Please take your card    Enter: finish"),
    "kiosk.short": ("余额不足，还差 {short}：请到收费处充值后再挂号", "Not enough deposit: {short} short. Please top up at the cashier, then register here."),
    "kiosk.card_refused": ("此卡在本机不能使用：请到收费处办理", "This card cannot be used here: please go to the cashier"),
    "kiosk.lost": ("此卡已挂失：请到收费处办理", "This card was reported lost: please go to the cashier"),
    "kiosk.no_catalogue": ("本机暂时不能挂号：请到分诊台挂号", "Registration is not available at this machine now: please register at the triage desk"),
    "kiosk.refused": ("不能挂号：{reason}\n请到分诊台或收费处", "Cannot register: {reason}\nPlease go to the triage desk or the cashier"),
    "kiosk.no_clinics": ("没有可挂号的科室：请到分诊台", "No department to register for: please go to the triage desk"),
    "display.title": ("{dept} 候诊", "{dept} waiting room"),
    "display.all": ("门诊", "Outpatients"),
    "display.calling": ("正在呼叫", "Now calling"),
    "display.next": ("请准备", "Next"),
    "display.to_room": ("请到 {room}", "to {room}"),
    "display.none": ("—", "—"),
    "display.waiting": ("候诊 {n} 人", "{n} waiting"),
    "display.keys": ("Ctrl+Q 退出", "Ctrl+Q quit"),
    "display.no_dept": ("未指定科室：--dept 科室代码，或配置 department", "no department: --dept CODE, or department in the config"),
}

# -- the doctor's station (edge_node.clinic, the doctor desk) --------------------------------
_DOCTOR = {
    "problem.order.empty": ("请至少添加一个项目", "add at least one item"),
    "problem.order.unknown_template": ("本版价目表中没有模板 {template}", "there is no template {template} in this catalogue version"),
    "problem.order.stock_unknown": ("{item}：本机不知道 {pharmacy} 的库存（未同步或从未入库），请与药房确认", "{item}: the stock at {pharmacy} is not known at this counter (never received, or not synced): check with the pharmacy"),
    "problem.order.stock_short": ("{item}：{pharmacy} 仅有 {have} {unit}，开了 {qty} {unit}", "{item}: only {have} {unit} on hand at {pharmacy}, {qty} prescribed"),
    "problem.order.same_drug": ("{item}：医嘱 {order} 中已开此药，尚未撤销", "{item} is already prescribed in order {order}, not cancelled"),
    "problem.order.not_covered": ("{item}：不在患者医保目录内，需自费", "{item}: not covered by the patient's insurance, self-pay"),
    "problem.order.partly_covered": ("{item}：乙类，医保部分报销，患者需自付一部分", "{item}: class B, only partly covered by the patient's insurance"),
    "problem.order.unconfirmed": ("还有 {n} 条提醒未确认：请阅读后确认再发送", "{n} warning(s) not confirmed: read them and confirm before sending"),
    "problem.order.reason": ("请填写撤销原因", "give the reason for cancelling"),
    # the doctor's desk: queue
    "doctor.queue_title": ("候诊队列  科室 {dept}  诊室 {room}", "Queue  department {dept}  room {room}"),
    "doctor.card_placeholder": ("刷卡或输入卡号", "tap or type a card no."),
    "doctor.col_no": ("号", "No."),
    "doctor.col_name": ("姓名", "Name"),
    "doctor.col_status": ("状态", "Status"),
    "doctor.col_doctor": ("医生", "Doctor"),
    "doctor.col_time": ("挂号时间", "Registered"),
    "doctor.no_department": ("本窗口未配置科室（配置文件 department）：无法显示队列", "This counter has no department set (config: department): no queue to show"),
    "doctor.queue_empty": ("今天还没有候诊的患者", "Nobody in the queue today yet"),
    "doctor.nobody_waiting": ("没有候诊的患者", "Nobody is waiting"),
    "doctor.called": ("已叫号 {number}：患者进来后按回车或刷卡开始就诊", "Called {number}: press Enter or tap their card when they come in"),
    "doctor.recalled": ("已重呼 {number}", "Called {number} again"),
    "doctor.skipped": ("{number} 过号：稍后可按 F4 重呼", "{number} skipped: F4 calls them again later"),
    "doctor.marked_no_show": ("{number} 已记为未到", "{number} marked as no-show"),
    "doctor.finish_first": ("请先完成或取消当前的单据，再刷下一张卡", "Finish or cancel the form on screen before the next card"),
    "doctor.status.waiting": ("候诊", "waiting"),
    "doctor.status.called": ("已叫号", "called"),
    "doctor.status.skipped": ("过号", "skipped"),
    "doctor.status.consulting": ("就诊中", "in consultation"),
    "doctor.status.done": ("已完成", "done"),
    "doctor.status.no_show": ("未到", "no-show"),
    # the doctor's desk: the patient
    "doctor.balance": ("余额", "Balance"),
    "doctor.insurance": ("医保", "Insurance"),
    "doctor.insurance.none": ("自费", "self-pay"),
    "doctor.insurance.employee": ("职工医保", "employee"),
    "doctor.insurance.resident": ("居民医保", "resident"),
    "doctor.seeing": ("本次就诊 {number}（{status}）", "visit {number} ({status})"),
    "doctor.no_visit_open": ("今天没有进行中的就诊", "no open visit today"),
    "doctor.allergic": ("⚠ 过敏史：{list}", "⚠ Allergies: {list}"),
    "doctor.no_allergies": ("无过敏记录", "No allergies recorded"),
    "doctor.no_visits": ("没有就诊记录", "No visits"),
    "doctor.more_visits": ("……另有 {n} 次就诊", "… {n} more visits"),
    "doctor.diagnosis": ("诊断", "Diagnosis"),
    "doctor.no_orders": ("医嘱：还没有", "Orders: none yet"),
    "doctor.orders_title": ("医嘱（{n}）", "Orders ({n})"),
    "doctor.col_order": ("医嘱号", "Order"),
    "doctor.col_type": ("类别", "Type"),
    "doctor.col_items": ("项目", "Items"),
    "doctor.col_total": ("金额", "Total"),
    "doctor.col_state": ("状态", "State"),
    "doctor.order_type.lab": ("检验", "lab"),
    "doctor.order_type.exam": ("检查", "exam"),
    "doctor.order_type.drug": ("处方", "drugs"),
    "doctor.order_state.placed": ("待执行", "to be done"),
    "doctor.order_state.cancelled": ("已撤销", "cancelled"),
    "doctor.at_execution": ("（执行时扣费）", " (charged when done)"),
    "doctor.refunded": ("已退 {amount}", "refunded {amount}"),
    "doctor.need_visit": ("没有进行中的就诊：请先叫号或刷卡", "No visit in consultation: call the patient or tap their card first"),
    "doctor.pick_order": ("请先在医嘱列表中选中一条医嘱", "Pick an order in the list first"),
    "doctor.title_diagnose": ("诊断", "Diagnosis"),
    "doctor.title_allergy": ("过敏史", "Allergy"),
    "doctor.title_insurance": ("医保类别", "Insurance class"),
    "doctor.title_cancel": ("撤销医嘱（医生批准退费）", "Cancel order (refund approved by the doctor)"),
    "doctor.icd10_placeholder": ("可不填，如 J06.9", "optional, e.g. J06.9"),
    "doctor.substance_placeholder": ("过敏类别或药名，如 青霉素类", "class or drug, e.g. 青霉素类"),
    "doctor.allergy_action": ("操作", "Action"),
    "doctor.allergy_record": ("记录", "record"),
    "doctor.allergy_withdraw": ("撤销（记错了）", "withdraw (recorded wrongly)"),
    "doctor.choice_hint": ("←/→ 或数字键选择，Ctrl+S 确定", "←/→ or a number picks, Ctrl+S saves"),
    "doctor.diagnosed": ("已记录诊断：{text}", "Diagnosis recorded: {text}"),
    "doctor.allergy_recorded": ("已记录过敏：{substance}", "Allergy recorded: {substance}"),
    "doctor.allergy_withdrawn": ("已撤销过敏记录：{substance}", "Allergy withdrawn: {substance}"),
    "doctor.insurance_set": ("医保类别已设为 {insurance}", "Insurance class set to {insurance}"),
    "doctor.sent": ("已发送 {n} 张医嘱：{orders}，余额 {balance}", "{n} order(s) sent: {orders}; balance {balance}"),
    "doctor.cancel_about": ("医嘱 {order}：{items}。撤销后退回预交金 {refund}", "Order {order}: {items}. Cancelling returns {refund} to the deposit"),
    "doctor.cancelled": ("医嘱 {order} 已撤销，退回 {refund}，余额 {balance}", "Order {order} cancelled, {refund} refunded; balance {balance}"),
    "doctor.finished": ("{number} 就诊结束", "Visit {number} finished"),
    # the order form
    "order.title.requisition": ("检查检验申请 — {name} {visit}", "Requisition (exams, lab tests) — {name} {visit}"),
    "order.title.prescription": ("处方 — {name} {visit}", "Prescription — {name} {visit}"),
    "order.search_placeholder": ("编码、名称或拼音首字母，回车添加", "code, name or pinyin initials; Enter adds"),
    "order.qty": ("数量", "Qty"),
    "order.dose": ("单次剂量", "Dose"),
    "order.per_day": ("次/日", "×/day"),
    "order.days": ("天数", "Days"),
    "order.insurance_class": ("医保{cls}", "ins. {cls}"),
    "order.template": ("模板", "Template"),
    "order.no_templates": ("本版价目表没有此类模板", "No templates of this kind in the catalogue"),
    "order.not_found": ("没有找到 {q}", "Nothing found for {q}"),
    "order.col_item": ("项目", "Item"),
    "order.col_usage": ("用法", "Usage"),
    "order.col_dept": ("执行科室", "Done by"),
    "order.col_amount": ("金额", "Amount"),
    "order.usage": ("每次{dose}{unit} {per_day}次/日 {days}天", "{dose}{unit} {per_day}×/day {days} d"),
    "order.total": ("合计 {total}（{n} 项）", "Total {total} ({n} items)"),
    "order.empty": ("还没有项目：搜索后回车添加，或 Ctrl+T 选模板", "No items yet: search and press Enter, or Ctrl+T for a template"),
    "order.checking": ("正在检查…", "Checking…"),
    "order.checks_passed": ("检查通过：库存、过敏、重复用药、剂量、医保、余额均无问题", "Checks passed: stock, allergy, same drug, dose, insurance, deposit"),
    "order.block": ("不能开：", "BLOCKED:"),
    "order.warning": ("提醒：", "Warning:"),
    "order.confirmed": ("已确认", "confirmed"),
    "order.blocked": ("有红色的阻止项：修改后才能发送", "Red items block this order: change it before sending"),
    "order.confirm_hint": ("有 {n} 条黄色提醒：阅读后按 Ctrl+Y 确认，再按 Ctrl+S 发送", "{n} yellow warning(s): read them, Ctrl+Y confirms, then Ctrl+S sends"),
    "order.ready": ("可以发送：Ctrl+S", "Ready: Ctrl+S sends"),
    # keys
    "key.refresh": ("刷新", "Refresh"),
    "key.diagnose": ("诊断", "Diagnosis"),
    "key.allergy": ("过敏", "Allergy"),
    "key.insurance": ("医保", "Insurance"),
    "key.requisition": ("检查检验", "Requisition"),
    "key.prescription": ("处方", "Prescription"),
    "key.cancel_order": ("撤销医嘱", "Cancel order"),
    "key.finish": ("结束就诊", "Finish visit"),
    "key.back": ("返回", "Back"),
    "key.send_order": ("发送", "Send"),
    "key.confirm_warnings": ("确认提醒", "Confirm warnings"),
    "key.templates": ("模板", "Templates"),
}

_EXECUTION = {
    "problem.order.step": ("医嘱 {order} 当前为「{status}」，不能{step}", "order {order} is {status}: it cannot be {step} now"),
    "problem.order.wrong_window": ("医嘱 {order} 应在 {dept} 执行", "order {order} is done at {dept}"),
    "problem.order.charge_due": ("此次应扣 {due}，不是 {amount}", "this charges {due}, not {amount}"),
    "problem.order.specimen_missing": ("检验签到需要标本号", "a lab order is checked in with its specimen id"),
    "problem.order.result_missing": ("请填写结果或报告单号", "give the result or the report's number"),
    "problem.order.line_unknown": ("{code} 不在医嘱 {order} 中", "{code} is not in order {order}"),
    "problem.order.over_dispense": ("{code}：还剩 {left}，不能发/退 {qty}", "{code}: {left} left, not {qty}"),
    "problem.order.return_refund": ("退回这些项目应退 {due}，不是 {amount}", "returning these gives back {due}, not {amount}"),
    "problem.stock.same_place": ("调拨须调往另一药房", "a transfer goes to another pharmacy"),
    "field.specimen_id": ("标本号", "Specimen no."),
    "field.result": ("结果", "Result"),
    "field.to_pharmacy": ("调入药房", "To pharmacy"),
    "doctor.order_state.checked_in": ("已签到", "checked in"),
    "doctor.order_state.collected": ("已采样", "collected"),
    "doctor.order_state.executed": ("已执行", "done"),
    "doctor.order_state.resulted": ("已出报告", "result ready"),
    "doctor.order_state.part_dispensed": ("部分发药", "partly dispensed"),
    "doctor.order_state.dispensed": ("已发药", "dispensed"),
    "doctor.order_state.returned": ("已退药", "returned"),
    "field.from_pharmacy": ("调出药房", "From pharmacy"),
    "field.dispense_id": ("发药单号", "Dispensing no."),
    "field.report_ref": ("报告单号", "Report no."),
}

_LABELS_PRINT = {
    # specimen and medication labels (edge_node.labels)
    "labels.specimen.title": ("检验标本", "Lab specimen"),
    "labels.dispense.title": ("用药标签", "Medication label"),
    "labels.sex.M": ("男", "M"),
    "labels.sex.F": ("女", "F"),
    "labels.age": ("{n}岁", "{n} y"),
    "labels.patient_id": ("病人号", "Patient ID"),
    "labels.order": ("申请单号", "Order"),
    "labels.items": ("项目", "Tests"),
    "labels.list_sep": ("、", ", "),
    "labels.specimen": ("标本", "Specimen"),
    "labels.collected": ("采集时间", "Collected"),
    "labels.drug": ("药品", "Drug"),
    "labels.qty": ("数量", "Quantity"),
    "labels.usage_label": ("用法", "Take"),
    "labels.usage": ("每次 {dose}，{freq}，{span}", "{dose}, {freq}, {span}"),
    "labels.freq": ("每日 {n} 次", "{n} times a day"),
    "labels.freq.once": ("每日 1 次", "once a day"),
    "labels.days": ("共 {n} 天", "{n} days"),
    "labels.days.one": ("共 1 天", "1 day"),
    "labels.as_directed": ("遵医嘱", "as directed"),
    "labels.price": ("金额", "Price"),
    "labels.dispense_id": ("发药单号", "Dispense no."),
    "labels.pharmacy": ("药房", "Pharmacy"),
    "labels.dispensed": ("发药时间", "Dispensed"),
    "labels.unit.片": ("片", "tablet"), "labels.unit.片.n": ("片", "tablets"),
    "labels.unit.粒": ("粒", "capsule"), "labels.unit.粒.n": ("粒", "capsules"),
    "labels.unit.丸": ("丸", "pill"), "labels.unit.丸.n": ("丸", "pills"),
    "labels.unit.袋": ("袋", "sachet"), "labels.unit.袋.n": ("袋", "sachets"),
    "labels.unit.支": ("支", "ampoule"), "labels.unit.支.n": ("支", "ampoules"),
    "labels.unit.滴": ("滴", "drop"), "labels.unit.滴.n": ("滴", "drops"),
    "labels.unit.单位": ("单位", "unit"), "labels.unit.单位.n": ("单位", "units"),
    "labels.unit.瓶": ("瓶", "bottle"), "labels.unit.瓶.n": ("瓶", "bottles"),
    "labels.unit.盒": ("盒", "box"), "labels.unit.盒.n": ("盒", "boxes"),
    "labels.unit.贴": ("贴", "patch"), "labels.unit.贴.n": ("贴", "patches"),
    "labels.unit.喷": ("喷", "spray"), "labels.unit.喷.n": ("喷", "sprays"),
    "labels.unit.次": ("次", "time"), "labels.unit.次.n": ("次", "times"),
    # printing
    "labels.no_printer": ("未设置标签打印机：标签没有打印（记录已保存）", "No label printer is set: the label was not printed (the record is saved)"),
    "labels.print_failed": ("标签没有打印（{device}：{reason}），记录已保存，可重新打印", "Label not printed ({device}: {reason}); the record is saved, print it again"),
    "labels.cannot_print": ("条码 {barcode} 无法打印在 {width} 点宽的纸上", "Barcode {barcode} cannot be printed {width} dots wide"),
    "labels.err.missing": ("找不到打印机，请检查连线和电源", "printer not found: check its cable and power"),
    "labels.err.denied": ("没有写入打印机的权限", "no permission to write to the printer"),
    "labels.err.busy": ("打印机正忙", "the printer is busy"),
    "labels.err.directory": ("这是一个目录，不是打印机", "that is a directory, not a printer"),
    "labels.err.full": ("磁盘已满", "the disk is full"),
    "labels.err.io": ("打印机通信出错（缺纸或未盖好？）", "printer I/O error (out of paper or lid open?)"),
    "labels.err.other": ("写入失败：{detail}", "write failed: {detail}"),
}

# -- the reconciler's conflicts about executing orders (a counter's notice says why) -----
_RECON14 = {
    "why.double_execution": ("医嘱重复签到", "an order checked in twice"),
    "why.double_dispense": ("处方重复发药", "a prescription dispensed twice"),
    "why.refund_after_execution": ("已执行医嘱被退费", "a refund of an order already done"),
    "why.charge_after_cancel": ("已撤销医嘱被收费", "a charge for a cancelled order"),
}

_WALK_DAY = {
    # make walkthrough: the whole day (edge_node.walkthrough --story day)
    "walk.day.catalogue": ("中心：发布价目表（执行时扣费），各窗口同步后共 {n} 条签名事件", "central: the price list is published (charged at execution); every counter holds its {n} signed events"),
    "walk.day.stock_in": ("[{node}] 药库入库 {item} ×{qty} → 库存 {have}", "[{node}] stock received from the store room: {item} ×{qty} → {have} on hand"),
    "walk.day.visit": ("[{node}] 挂号：{name} 内科 {number}，挂号费 {fee}", "[{node}] visit registered: {name}, internal medicine, number {number}, fee {fee}"),
    "walk.day.consult": ("[{node}] 医生接诊，诊查费 {fee}；诊断 {diagnosis}", "[{node}] the doctor starts the consultation (fee {fee}); diagnosis {diagnosis}"),
    "walk.day.order": ("[{node}] 开单 {order} → {dept}：{items}，{total}", "[{node}] order {order} sent to {dept}: {items}, {total}"),
    "walk.day.checked_in": ("[{node}] 检验签到 {order}：排队号 {number}，扣费 {amount} → 余额 {balance}，标本号 {specimen}", "[{node}] lab check-in {order}: number {number}, charged {amount} → balance {balance}, specimen {specimen}"),
    "walk.day.result": ("[{node}] 采样、检验完成，报告已出：{order}", "[{node}] specimen collected, analysed, result ready: {order}"),
    "walk.day.cancelled": ("[{node}] 医生撤销医嘱 {order}，退回 {amount} → 余额 {balance}", "[{node}] the doctor cancels order {order}: {amount} back → balance {balance}"),
    "walk.day.pharmacy_offline": ("\n—— 网络中断：{node} 离线，照常发药 ——", "\n—— the link drops: {node} is offline and keeps dispensing ——"),
    "walk.day.dispensed": ("[{node}] 发药 {order}：{items}，扣费 {amount} → 余额 {balance}", "[{node}] dispensed {order}: {items}, charged {amount} → balance {balance}"),
    "walk.day.pharmacy_online": ("\n—— 网络恢复：{node} 把离线发药同步到中心 ——", "\n—— the link is back: {node} syncs what it dispensed offline ——"),
    "walk.day.raised": ("中心：对账发现冲突 {cid}：同一处方在 {nodes} 各发一次，多收 {amount}", "central: the reconciler raised {cid}: one prescription dispensed at {nodes}, {amount} charged twice"),
    "walk.day.reason": ("患者退回多发的药", "the patient brought the extra drugs back"),
    "walk.day.remedy": ("药品退回：库存更正，退还多收的费用", "drugs brought back: stock corrected, the extra charge returned"),
    "walk.day.settled": ("[{node}] 结算：退还余额 {amount}（现金，{supervisor} 批准）→ 余额 {balance}", "[{node}] settlement: {amount} paid back in cash (approved by {supervisor}) → balance {balance}"),
    "walk.day.agree": ("{n} 个窗口与中心一致：余额已结清，处方已发药，库存 布洛芬 {ibu}、阿莫西林 {amx}", "{n} counters and central agree: account settled, prescription dispensed, stock ibuprofen {ibu}, amoxicillin {amx}"),
    "walk.day.done": ("\n完成：一天的业务经中心同步，冲突已由信息科处理，各窗口账目一致。", "\nDone: the day synced through central, IT resolved the conflict, every counter agrees."),
}

for _block in (_SEARCH, _CHECKS, _DESK, _BUSINESS, _CLI, _DEMO, _IMPORT, _TLS, _DORMANT,
               _BACKUP, _AUDIT, _CLINIC, _CATALOGUE, _QUEUE, _DOCTOR,
               _EXECUTION, _LABELS_PRINT, _RECON14,
               _WALK_DAY):
    STRINGS.update(_block)


class Table:
    """A (zh, en) string table in one language: ``tr("key", n=3)``; a missing key shows
    itself (``[key]``) and a template whose values do not fit shows as it is."""

    strings: ClassVar[dict[str, tuple[str, str]]] = {}

    def __init__(self, language: str = "zh") -> None:
        self.language = language if language in LANGUAGES else "zh"
        self._i = 0 if self.language == "zh" else 1

    def __call__(self, key: str, **values: object) -> str:
        pair = self.strings.get(key)
        if pair is None:
            return f"[{key}]"
        text = pair[self._i]
        try:
            return text.format(**values) if values else text
        except (KeyError, IndexError, ValueError):
            return text

    def has(self, key: str) -> bool:
        return key in self.strings

    def maybe(self, key: str, default: str) -> str:
        return self(key) if key in self.strings else default


class Translator(Table):
    """The counter's strings in one language (screens, receipts, reports, refusals)."""

    strings = STRINGS

    def app_title(self, role: str) -> str:
        """The counter's title for its role (the cashier's for any other)."""
        key = f"app.title.{role}"
        return self(key if key in self.strings else "app.title")

    def problem(self, p: Problem) -> str:
        """One plain-language line for a refusal, in this language: the code's template
        (``problem.<code>``, or ``problem.<code>.<variant>``) with the problem's values,
        amounts in yuan and the field's label.  A code with no template yet: its English
        message in English, "not done" and the code in Chinese (never a crash)."""
        key = f"problem.{p.code}"
        variant = p.values.get("variant")
        if variant and f"{key}.{variant}" in STRINGS:
            key = f"{key}.{variant}"
        pair = STRINGS.get(key)
        if pair is None:
            if self.language == "en":
                return p.message[:1].upper() + p.message[1:]
            return self("problem.unknown", code=p.code)
        values: dict[str, object] = {k: yuan(v) if isinstance(v, Amount) else v
                                     for k, v in p.values.items()}
        for word in ("status", "step"):  # a visit's or order's status word, translated
            v = values.get(word)
            if isinstance(v, str) and f"{word}.{v}" in REGISTRY.labels:
                values[word] = REGISTRY.label(f"{word}.{v}", self.language)
        values["label"] = self.label(p.field)
        try:
            return pair[self._i].format_map(values)
        except (KeyError, IndexError, ValueError, AttributeError):  # values it lacks
            if self.language == "en":
                return p.message[:1].upper() + p.message[1:]
            return pair[self._i].format_map(_Missing(values))

    def problems(self, problems: list[Problem]) -> str:
        return "\n".join(self.problem(p) for p in problems)

    def label(self, path: str) -> str:
        """A field's label in this language: ``phone`` → 手机号, ``items[1].qty`` →
        收费项目第 2 项 · 数量 (a name with no label is shown as it is)."""
        parts: list[str] = []
        for name, index in _PATH.findall(path):
            if name:
                parts.append(self(f"field.{name}") if f"field.{name}" in STRINGS else name)
            elif parts:
                parts[-1] = self("field.item_n", label=parts[-1], n=int(index) + 1)
        return " · ".join(parts) or self("field.none")


_PATH = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class _Missing(dict[str, object]):
    """Template values where a value the template names is missing shows as "…"."""

    def __missing__(self, key: str) -> str:
        return "…"
