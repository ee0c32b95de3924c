# ruff: noqa: E501  (a string table: one entry per line reads better than wrapped pairs)
"""Every word the IT console shows, in Simplified Chinese and English (one table).

``Translator(lang)("key", **values)`` formats a string; a missing key shows itself
(``[key]``) instead of crashing the console.  The language is central's
``[central] language`` (``zh`` by default, like the counters).

What the reconciler wrote into the conflict book (titles, explanations, remedy
effects, with their figures) is English; the console says the kind, the remedy and
its effect in Chinese from the stable codes and the remedy's event bodies, and keeps
the book's English detail beside it.  In English the console shows the codes IT types
(``overdraft``, ``charge.reversed``) as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from edge_node.i18n import Table
from protocol.domain import REGISTRY
from protocol.money import yuan

STRINGS: dict[str, tuple[str, str]] = {
    # app
    "app.title": ("一卡通 信息科控制台", "onecard central"),
    "app.subtitle": ("冲突", "conflicts"),
    # keys (footer)
    "key.open": ("打开", "Open"),
    "key.kind": ("类型", "Kind"),
    "key.status": ("状态", "Status"),
    "key.node": ("窗口", "Node"),
    "key.date": ("日期", "Date"),
    "key.clear": ("清除筛选", "Clear filters"),
    "key.ack": ("受理", "Ack"),
    "key.search": ("搜索", "Search"),
    "key.nodes": ("节点", "Nodes"),
    "key.refresh": ("刷新", "Refresh"),
    "key.quit": ("退出", "Quit"),
    "key.back": ("返回", "Back"),
    "key.close": ("关闭", "Close"),
    "key.remedy": ("方案 {n}", "Remedy {n}"),
    "key.resolve": ("解决…", "Resolve…"),
    "key.open_conflict": ("打开冲突", "Open conflict"),
    "key.cancel": ("取消", "Cancel"),
    "key.sign": ("签署处理", "Sign remedy"),
    # filters
    "filter.kind": ("类型 {v}", "kind {v}"),
    "filter.status": ("状态 {v}", "status {v}"),
    "filter.node": ("窗口 {v}", "node {v}"),
    "filter.date": ("日期 {v}", "date {v}"),
    "filter.any": ("全部", "any"),
    "filter.active": ("未处理+已受理", "open+ack"),
    "filter.days": ("最近 {n} 天", "last {n} d"),
    # the queue
    "col.status": ("状态", "status"),
    "col.severity": ("严重度", "severity"),
    "col.kind": ("类型", "kind"),
    "col.amount": ("金额", "amount"),
    "col.happened": ("发生时间", "happened"),
    "col.nodes": ("窗口", "nodes"),
    "col.title": ("标题", "title"),
    "queue.count": ("{n} 个冲突", "{n} conflict(s)"),
    "queue.none": ("没有符合条件的冲突", "no conflicts match"),
    "queue.acked": ("{cid} 已由 {op} 受理", "{cid} acknowledged by {op}"),
    "queue.not_open": ("{cid} 不是未处理状态：无需受理", "{cid} is not open: nothing to acknowledge"),
    "status.open": ("未处理", "open"),
    "status.acknowledged": ("已受理", "acknowledged"),
    "status.resolved": ("已解决", "resolved"),
    "status.withdrawn": ("已撤销", "withdrawn"),
    "severity.high": ("高", "high"),
    "severity.medium": ("中", "medium"),
    "severity.low": ("低", "low"),
    # conflict kinds (the queue's kind column, titles)
    "conflict.overdraft": ("离线透支", "overdraft"),
    "conflict.lost_card_used": ("挂失卡被使用", "lost_card_used"),
    "conflict.duplicate_patient": ("重复建档", "duplicate_patient"),
    "conflict.likely_duplicate": ("疑似重复建档", "likely_duplicate"),
    "conflict.double_replacement": ("重复补卡", "double_replacement"),
    "conflict.over_refund": ("超额退费", "over_refund"),
    "conflict.double_settlement": ("重复结算", "double_settlement"),
    "conflict.merged_record_used": ("合并后旧档案被使用", "merged_record_used"),
    "conflict.double_cancel": ("医嘱重复撤销", "double_cancel"),
    "conflict.double_fee": ("重复收取诊查费", "double_fee"),
    "conflict.equivocation": ("双重历史（同一位置两个事件）", "equivocation"),
    "conflict.chain_break": ("哈希链断裂", "chain_break"),
    "conflict.revoked_node": ("已吊销窗口的事件", "revoked_node"),
    "conflict.stale_key": ("用已停用密钥签署的事件", "stale_key"),
    "conflict.clock_skew": ("时钟超前", "clock_skew"),
    "conflict.malformed_event": ("格式错误的事件", "malformed_event"),
    "conflict.reconcile_error": ("对账出错", "reconcile_error"),
    # what each kind means (zh: said before the book's English detail)
    "explain.overdraft": ("多个离线窗口互不知情地从同一账户扣款，合计超过了余额。", ""),
    "explain.lost_card_used": ("卡已挂失（或作废、冻结），但尚未得知的窗口之后仍用它收费：请向病人核实这些收费。", ""),
    "explain.duplicate_patient": ("同一身份证号被建档多次。", ""),
    "explain.likely_duplicate": ("姓名、出生日期和电话相同的档案可能是同一人。", ""),
    "explain.double_replacement": ("同一张卡被补卡多次：只应有一张新卡在用。", ""),
    "explain.over_refund": ("一笔收费的退款合计超过了可退金额。", ""),
    "explain.double_settlement": ("账户在两次结算之间没有充值：余额被退了两次。", ""),
    "explain.merged_record_used": ("档案合并后，尚未得知的窗口仍在旧档案上办理业务。", ""),
    "explain.double_cancel": ("同一医嘱被多个离线窗口撤销，已扣费用被重复退回预交金。", ""),
    "explain.double_fee": ("同一次就诊的诊查费被多个离线窗口重复收取。", ""),
    "explain.equivocation": ("该窗口在已有的位置提交了另一个事件：它签署了两段历史（密钥被复制或磁盘被还原）。", ""),
    "explain.chain_break": ("该窗口发来的事件接不上它的哈希链：未存储。", ""),
    "explain.revoked_node": ("该窗口已被吊销，但之后仍签署了事件：其密钥可能已落入他人之手。", ""),
    "explain.stale_key": ("该窗口的事件是用其密钥有效范围之外的密钥签署的（轮换后的旧密钥或吊销后的密钥）：已拒收并作为证据保存，未合并。", ""),
    "explain.clock_skew": ("该窗口的时钟比中心快得过多：它的事件排序会靠后。", ""),
    "explain.malformed_event": ("该窗口签署了中心无法接受的事件：已作为证据保存，未合并。", ""),
    "explain.reconcile_error": ("中心对账时出错：事件已存储和同步，但在修复前不再检测它可能引起的冲突。", ""),
    "detail.original": ("详情：{text}", "{text}"),
    # remedies (zh labels and effects are built from the remedy's events)
    "remedy.debt": ("记录欠费", ""),
    "remedy.debt_back": ("收回多退金额", ""),
    "remedy.reverse": ("撤销收费 {charges}", ""),
    "remedy.block": ("冻结卡 {cards}", ""),
    "remedy.move": ("把 {amount} 转到 {pid}", ""),
    "remedy.merge": ("合并到 {pid}", ""),
    "remedy.accept": ("维持原状", ""),
    "remedy.return": ("退还 {amount}", ""),
    "effect.debt": ("记录 {pid} 欠费 {amount}：各窗口在下次就诊时收取，下次充值先还欠款。", ""),
    "effect.debt_back": ("从 {pid} 的账户扣回 {amount}（余额不足部分记为欠费，下次就诊时收取）。", ""),
    "effect.reverse": ("撤销收费 {charges}，共 {amount} 退回账户，由医院承担。", ""),
    "effect.block": ("在所有窗口冻结卡 {cards}。", ""),
    "effect.move": ("把旧档案 {merged} 的 {amount} 转到 {pid}。", ""),
    "effect.merge": ("把 {merged} 合并到 {pid}：余额和卡转过去，旧档案在所有窗口指向它。", ""),
    "effect.accept": ("维持原状，标记为已审核。", ""),
    "effect.return": ("把多收的 {amount} 退回 {pid} 的预交金。", ""),
    # one conflict
    "detail.head": ("{cid}   {kind}   严重度 {severity}   [b]{status}[/b]", "{cid}   {kind}   severity {severity}   [b]{status}[/b]"),
    "detail.amount": ("   金额 {amount}", "   amount {amount}"),
    "detail.happened": ("   发生于 {when}", "   happened {when}"),
    "detail.events": ("涉及的事件", "Events involved"),
    "detail.timeline": ("账户流水", "Account timeline"),
    "detail.remedies": ("处理方案", "Remedies"),
    "detail.by": ("操作员", "by"),
    "detail.not_merged": ("（未合并）", "(not merged)"),
    "detail.quarantined": ("{kind}（已隔离：{why}）", "{kind} (quarantined: {why})"),
    "detail.why": ("原因", "why"),
    "detail.why_equivocation": ("该位置已有另一个事件", "another event is already held at this position"),
    "detail.no_account": ("（不涉及账户）", "(no account involved)"),
    "detail.resolved": ("已由 {op} 以 {kind}（{event}）于 {when} 解决：{reason}", "Resolved by {op} with {kind} ({event}) at {when}: {reason}"),
    "detail.press_number": ("按数字键查看方案的效果，再按 c 解决。", "Press the number to see what it will do, then c to resolve."),
    "detail.will_do": ("将会：", "what it will do:"),
    "detail.signs": ("中心签署 {kind}：", "central signs {kind}: "),
    "detail.press_c": ("按 c 用此方案解决。", "Press c to resolve with it."),
    "detail.no_conflict": ("没有冲突 {cid}", "no conflict {cid}"),
    "detail.no_remedy": ("没有方案 {n}", "there is no remedy {n}"),
    "detail.already": ("已经解决", "already resolved"),
    "detail.choose_first": ("请先选择方案（1、2、3 …）", "choose a remedy first (1, 2, 3 …)"),
    "detail.done": ("已解决：中心签署了 {n} 个事件，将同步到所有窗口", "resolved: {n} central event(s) signed; they sync to every counter"),
    "detail.acked": ("已由 {op} 受理", "acknowledged by {op}"),
    "detail.only_open": ("只有未处理的冲突可以受理", "only an open conflict can be acknowledged"),
    "col.mark": (" ", " "),
    "col.when": ("时间", "when"),
    "col.event": ("事件", "event"),
    "col.change": ("变动", "change"),
    "col.balance": ("余额", "balance"),
    # resolve
    "resolve.title": ("解决 {cid}：{label}", "Resolve {cid}: {label}"),
    "resolve.signed_by": ("由 {op} 以中心身份签署；将同步到所有窗口，不能撤回。", "Signed as central by {op}; it syncs to every counter and cannot be taken back."),
    "resolve.reason": ("原因（必填，记录在事件中以备审计）", "reason (required, kept in the event for audit)"),
    "resolve.need_reason": ("必须填写原因：未签署任何事件。", "A reason is required: nothing was signed."),
    "resolve.refused": ("未解决：{msg}", "Not resolved: {msg}"),
    "resolve.no_key": ("此控制台没有中心密钥：只能查看", "this console has no central key: it can only look"),
    # nodes
    "nodes.legend": ("滞后：中心已有而该窗口尚未收到的事件 · 待收：该窗口自己的、中心尚未收到的事件（以最后联系时窗口所报为准）· 冲突：涉及该窗口的未处理或已受理冲突",
                     "lag: events central holds that the node has not received yet · pending: the node's own events central has not received, as the node said when last seen · conflicts: open or acknowledged ones naming the node"),
    "col.node": ("窗口", "node"),
    "col.role": ("角色", "role"),
    "col.state": ("状态", "state"),
    "col.last_seen": ("最后联系", "last seen"),
    "col.head": ("链头", "head"),
    "col.lag": ("滞后", "lag"),
    "col.pending": ("待收", "pending"),
    "col.conflicts": ("冲突", "conflicts"),
    "col.fingerprint": ("密钥指纹", "key fingerprint"),
    "state.online": ("在线", "online"),
    "state.offline": ("离线", "offline"),
    "state.revoked": ("已吊销", "revoked"),
    "never": ("从未", "never"),
    "ago.s": ("{n}秒前", "{n}s ago"),
    "ago.m": ("{n}分钟前", "{n}m ago"),
    "ago.h": ("{n}小时前", "{n}h ago"),
    "ago.d": ("{n}天前", "{n}d ago"),
    "role.cashier": ("收费挂号", "cashier"),
    "role.triage": ("分诊", "triage"),
    "role.doctor": ("医生", "doctor"),
    "role.lab": ("检验", "lab"),
    "role.pharmacy": ("药房", "pharmacy"),
    "role.kiosk": ("自助机", "kiosk"),
    # search
    "search.placeholder": ("卡号、病人号、身份证号或姓名——按回车搜索", "card number, patient number, national ID or name — Enter to search"),
    "col.patient": ("病人号", "patient"),
    "col.name": ("姓名", "name"),
    "col.registered": ("建档窗口", "registered at"),
    "col.cards": ("卡号", "cards"),
    "col.merged": ("合并到", "merged into"),
    "search.count": ("{n} 位病人", "{n} patient(s)"),
    "search.none": ("没有匹配 {q} 的病人", "nothing matches {q}"),
    "search.indexing": ("（搜索索引正在建立，本次逐一查看了所有病人，较慢）",
                        "(the search index is being made: this search read every patient, "
                        "which is slow)"),
    "search.no_conflicts": ("{pid} 没有冲突", "{pid} has no conflicts"),
    # a patient number in a conflict's text, with the name the console opened
    "patient.named": ("{pid}（{name}）", "{pid} ({name})"),
    # an event's fields (zh; English shows the field names as they are)
    "field.amount": ("金额", "amount"),
    "field.card_no": ("卡号", "card_no"),
    "field.new_card_no": ("新卡号", "new_card_no"),
    "field.old_card_no": ("旧卡号", "old_card_no"),
    "field.charge_id": ("收费单号", "charge_id"),
    "field.department": ("科室", "department"),
    "field.patient_id": ("病人号", "patient_id"),
    "field.receipt_no": ("单号", "receipt_no"),
    "field.method": ("支付方式", "method"),
    "field.to": ("退至", "to"),
    "field.reason": ("原因", "reason"),
    "field.verified_by": ("身份核实凭证", "verified_by"),
    "field.approved_by": ("批准人", "approved_by"),
    "field.authorised_by": ("授权人", "authorised_by"),
    "field.limit": ("额度", "limit"),
    "field.debit": ("扣回", "debit"),
    "field.moved": ("转移金额", "moved"),
    "field.items": ("项目", "items"),
    "field.card_entry": ("读卡方式", "card_entry"),
    "field.conflict_id": ("冲突", "conflict_id"),
    "field.survivor_id": ("保留档案", "survivor_id"),
    "field.merged_id": ("并入档案", "merged_id"),
}

# -- the daily audit, balance and verify (central/audit.py) -----------------------------
_AUDIT: dict[str, tuple[str, str]] = {
    "conflict.audit_finding": ("稽核发现", "audit_finding"),
    "explain.audit_finding": ("每日自动稽核从事件重新计算当天的资金后发现此问题：请核对后处理。", ""),
    "audit.rule.projection_mismatch": ("账户余额与事件重算不符", "account differs from its events"),
    "audit.rule.unbalanced": ("资金不平衡", "money does not balance"),
    "audit.rule.close_mismatch": ("日结与事件重算不符", "day close differs from the events"),
    "audit.rule.cash_miscount": ("实点现金与应有现金不符", "cash counted is not cash expected"),
    "audit.rule.missing_close": ("未日结", "day not closed"),
    "audit.rule.large_refund": ("大额退费", "large refund"),
    "audit.rule.large_credit": ("大额绿色通道授信", "large green-channel credit"),
    "audit.rule.repeated_loss": ("同一患者多次挂失", "several loss reports for one patient"),
    "audit.rule.deposit_refund_same_operator": ("同一操作员同日对同一账户充值并退费",
                                                "deposit and refund by one operator on one account"),
    "audit.title": ("每日稽核 {day}", "Daily audit {day}"),
    "audit.balanced": ("当日与总账均平衡（精确到分）", "the day and the whole book balance to the fen"),
    "audit.not_balanced": ("不平衡", "NOT balanced"),
    "audit.findings": ("发现 {n} 项问题", "{n} finding(s)"),
    "audit.no_findings": ("无问题", "no findings"),
    "audit.skipped": ("跳过的事件：无法解码 {bad}，格式错误 {invalid}，未知类型 {unknown}",
                      "events skipped: undecodable {bad}, malformed {invalid}, unknown kind {unknown}"),
    "audit.files": ("报告：{html}，{csv}", "report: {html}, {csv}"),
    "audit.flow": ("{flow}", "{flow}"),
    "flow.deposit": ("充值", "deposits"),
    "flow.charge": ("扣费", "charges"),
    "flow.refund": ("退回预交金", "refunds to deposit"),
    "flow.settle": ("结算退还", "settlements"),
    "flow.adjust": ("中心调整", "adjustments"),
    "flow.transfer": ("合并转移", "transfers"),
    "flow.opening": ("期初余额", "opening balances"),
    "audit.net": ("当日净额", "net for the day"),
    "audit.opening": ("期初余额合计", "balances at the start"),
    "audit.closing": ("期末余额合计", "balances at the end"),
    "audit.cash_out": ("现金退费", "refunds in cash"),
    "balance.patient": ("患者    {name}（{pid}）", "patient  {name} ({pid})"),
    "balance.card": ("卡      {card}  {status}", "card     {card}  {status}"),
    "balance.balance": ("余额    {amount}", "balance  {amount}"),
    "balance.credit": ("授信    {amount}", "credit   {amount}"),
    "balance.merged": ("已合并到 {pid}", "merged into {pid}"),
    "balance.last": ("最近事件", "last events"),
    "balance.unknown": ("没有卡号或患者号为 {what} 的记录", "no card or patient {what} is known"),
    "verify.ok": ("中心已校验 {n} 个事件：每条链的哈希、签名和链接完好",
                  "central verified {n} events: every chain's hashes, signatures and links intact"),
    "verify.bad": ("中心存储损坏：{node} #{seq}：{reason}（之前已校验 {n} 个事件）",
                   "central's store is BROKEN at {node} #{seq}: {reason} ({n} events checked before it)"),
}
STRINGS.update(_AUDIT)

# -- conflicts about executing orders and stock (central/reconcile.py) -------------------
_RECON14: dict[str, tuple[str, str]] = {
    "conflict.double_execution": ("医嘱重复签到", "double_execution"),
    "conflict.double_dispense": ("处方重复发药", "double_dispense"),
    "conflict.refund_after_execution": ("已执行医嘱被退费", "refund_after_execution"),
    "conflict.charge_after_cancel": ("已撤销医嘱被收费", "charge_after_cancel"),
    "conflict.stock_below_zero": ("库存为负", "stock_below_zero"),
    "explain.double_execution": ("同一检查检验医嘱被多个离线窗口签到（只应签到一次），之后的签到可能重复收费。", ""),
    "explain.double_dispense": ("同一处方被多个离线药房发药，发出的药超过了医嘱数量：药已离开药架（库存数字无误），错的是费用和发药记录。", ""),
    "explain.refund_after_execution": ("医嘱在一个窗口被撤销并退费，而另一个离线窗口已经执行或发药：已做的项目被退了费。", ""),
    "explain.charge_after_cancel": ("医嘱已在别处撤销，尚未得知的窗口签到或发药时又收了费，这笔费用没有退回。", ""),
    "explain.stock_below_zero": ("合并各窗口的事件后，药房某药品的库存低于零：离线药房互不知情地取了同一批药，或有入库未登记。", ""),
    "remedy.bring_back": ("病人退回多发的药", ""),
    "remedy.keep": ("病人留下多发的药：收取 {amount}", ""),
    "remedy.write_off": ("退还 {amount}，药品报损", ""),
    "remedy.correct": ("更正库存 {stock}", ""),
    "effect.bring_back": ("多发的药退回药房入库（{stock}），并退还 {amount} 给 {pid}。", ""),
    "effect.keep": ("从 {pid} 的账户扣收多发药品的药费 {amount}（余额不足部分记为欠费，下次就诊时收取）。", ""),
    "effect.write_off": ("把第二次发药的收费 {amount} 退回 {pid} 的预交金；药品由医院承担（已离开药架，库存不变）。", ""),
    "effect.correct": ("库存更正 {stock}（盘点发现或入库未登记），各窗口的库存随之更正。", ""),
    "field.order_id": ("医嘱号", "order_id"),
    "field.pharmacy": ("药房", "pharmacy"),
    "field.code": ("药品代码", "code"),
    "field.delta": ("数量变动", "delta"),
}
STRINGS.update(_RECON14)

# -- offline limits (issue 11): the overrun conflict and each counter's exposure ----------
_OFFLIMIT: dict[str, tuple[str, str]] = {
    "conflict.offline_overrun": ("脱机超限", "offline_overrun"),
    "explain.offline_overrun": ("窗口脱机期间（中心确认其事件之前）对同一账户的收费超过了中心设定的脱机限额（单笔或累计）；经主管批准的为低严重度，未经批准的须检查该窗口。账户若因此透支，由透支冲突处理。", ""),
    "col.cap": ("脱机累计限额", "offline cap"),
    "col.exposure": ("脱机风险上限", "exposure bound"),
    "col.overruns": ("超限", "overruns"),
    "nodes.exposure": ("脱机风险上限：窗口离线时，它不经主管批准最多能从各账户收走而中心尚未看到的金额 = 每个账户 min(累计限额, 中心所知可用余额) 之和（无累计限额时为可用余额之和）；在线为 0 · 超限：涉及该窗口的未处理脱机超限冲突",
                       "exposure bound: while a counter is offline, the most it can charge without a supervisor that central has not seen = the sum over accounts of min(cap, the account's available balance as central knows it) (no cap: the sum of available balances); online 0 · overruns: its open offline-overrun conflicts"),
}
STRINGS.update(_OFFLIMIT)

# -- the audit log (issue 11): central/console/screens/audit_log.py -----------------------
_AUDITLOG: dict[str, tuple[str, str]] = {
    "key.audit_log": ("审计日志", "Audit log"),
    "key.audit_who": ("按人员", "Who"),
    "key.audit_what": ("按类别", "What"),
    "audit.col.when": ("时间", "when"),
    "audit.col.where": ("地点", "where"),
    "audit.col.who": ("人员", "who"),
    "audit.col.what": ("操作", "what"),
    "audit.col.detail": ("详情", "detail"),
    "audit.any": ("全部", "any"),
    "audit.filters": ("审计日志（签名事件，不可修改）· 人员：{who} · 类别：{what}",
                      "Audit log (signed events, cannot be edited) · who: {who} · what: {what}"),
}
STRINGS.update(_AUDITLOG)

# -- the staff view (issue 11): central/console/screens/staff.py ------------------------
_STAFFVIEW: dict[str, tuple[str, str]] = {
    "key.staff": ("员工", "Staff"),
    "key.disable": ("停用", "Disable"),
    "key.enable": ("启用", "Enable"),
    "key.cancel_short": ("取消", "Cancel"),
    "staffview.col.id": ("工号", "staff id"),
    "staffview.col.name": ("姓名", "name"),
    "staffview.col.state": ("状态", "state"),
    "staffview.col.roles": ("角色", "roles"),
    "staffview.col.changed": ("最后变更", "last change"),
    "staffview.col.counters": ("可登录柜台", "counters"),
    "staffview.active": ("在用", "active"),
    "staffview.disabled": ("已停用", "disabled"),
    "staffview.everywhere": ("全部", "all"),
    "staffview.kind.staff.enrolled": ("登记", "enrolled"),
    "staffview.kind.staff.changed": ("修改", "changed"),
    "staffview.kind.staff.disabled": ("停用", "disabled"),
    "staffview.kind.staff.enabled": ("启用", "enabled"),
    "staffview.kind.staff.pin_reset": ("重置密码", "PIN reset"),
    "staffview.legend": ("中心签署的员工记录（与 onecard-central staff list 相同）：{n} 人，{off} 人停用 · d 停用 / e 启用所选员工（中心签名，同步到所有窗口，记入审计日志）",
                         "Staff as central signed them (as onecard-central staff list): {n}, {off} disabled · d disables / e enables the selected one (signed by central, syncs to every counter, on the audit log)"),
    "staffview.none": ("中心尚未登记任何员工（onecard-central staff add）", "no staff at central yet (onecard-central staff add)"),
    "staffview.confirm_disable": ("停用 {sid}（{name}）？停用后该员工在每个窗口同步后都不能登录。", "Disable {sid} ({name})? Once it syncs, they can log in at no counter."),
    "staffview.confirm_enable": ("启用 {sid}（{name}）？同步后该员工可再次登录。", "Enable {sid} ({name})? Once it syncs, they may log in again."),
    "staffview.signed_by": ("由 {op} 以中心身份签署 staff.{what} 事件，不能撤回（可再次启用/停用）。", "Signed as central by {op} (staff.{what}); it cannot be taken back (only undone by the opposite change)."),
    "staffview.reason": ("原因（可选，记录在事件中）", "reason (optional, kept in the event)"),
    "staffview.done": ("已签署中心 #{seq}：{sid} {what}", "signed central #{seq}: {sid} {what}"),
    "staffview.already": ("{sid} 当前已是“{state}”：未签署", "{sid} is already {state}: nothing signed"),
    "staffview.refused": ("未签署：{msg}", "Not signed: {msg}"),
}
STRINGS.update(_STAFFVIEW)
#: remedy codes said in Chinese from their events (any other code shows its English label)
_REMEDY_CODES = ("reverse", "block", "move", "merge", "accept", "return", "bring_back", "keep",
                 "write_off", "correct")


class Translator(Table):
    """The console's strings in one language: ``tr("key", n=3)``."""

    strings = STRINGS

    def __init__(self, language: str = "zh") -> None:
        super().__init__(language)
        self.zh = self.language == "zh"

    def word(self, prefix: str, code: str) -> str:
        """A code's word (``status.open`` → 未处理); an unknown code shows as it is."""
        pair = STRINGS.get(f"{prefix}.{code}")
        return pair[self._i] if pair is not None else code

    def event_kind(self, kind: str) -> str:
        """An event kind: its registered title in Chinese, the code in English."""
        if not self.zh:
            return kind
        k = REGISTRY.kinds.get(kind)
        return k.title[0] if k is not None else kind

    def field(self, name: str) -> str:
        """An event field's name: Chinese where the table or the registry has it."""
        if not self.zh:
            return name
        for key in (f"field.{name}", f"detail.{name}"):
            pair = STRINGS.get(key) or REGISTRY.labels.get(key)
            if pair is not None:
                return pair[0]
        return name

    def value(self, name: str, value: object) -> object:
        """A coded value in Chinese (``method: cash`` → 现金) from the registry's words."""
        prefix = _VALUE_WORDS.get(name)
        if not self.zh or prefix is None or not isinstance(value, str):
            return value
        pair = REGISTRY.labels.get(f"{prefix}.{value}")
        return pair[0] if pair is not None else value

    def ago(self, ms: int) -> str:
        s = max(0, ms // 1000)
        if s < 120:
            return self("ago.s", n=s)
        if s < 7200:
            return self("ago.m", n=s // 60)
        if s < 172800:
            return self("ago.h", n=s // 3600)
        return self("ago.d", n=s // 86400)

    # -- the conflict book's English, said in Chinese ---------------------------------------
    def conflict_title(self, kind: str, title: str) -> str:
        if not self.zh:
            return title
        if " — " in title:
            subject = title.split(" — ", 1)[1]
        elif kind == "revoked_node":  # "Events from revoked node cashier-03"
            subject = title.rsplit(" ", 1)[-1]
        else:
            subject = ""
        for english, chinese in _SUBJECT_WORDS:
            subject = re.sub(english, chinese, subject)
        return self.word("conflict", kind) + (f" — {subject}" if subject else "")

    def explanation(self, kind: str, text: str) -> str:
        if not self.zh:
            return text
        lead = self.word("explain", kind) if f"explain.{kind}" in STRINGS else ""
        return (lead + "\n" if lead else "") + self("detail.original", text=text)

    def remedy_label(self, kind: str, code: str, label: str,
                     events: tuple[tuple[str, Mapping[str, Any]], ...]) -> str:
        if not self.zh:
            return label
        v = _remedy_values(events)
        if code == "debt":
            return self("remedy.debt_back" if v["debit"] else "remedy.debt")
        if code in _REMEDY_CODES:
            return self(f"remedy.{code}", **v)
        return label

    def remedy_effect(self, code: str, effect: str,
                      events: tuple[tuple[str, Mapping[str, Any]], ...]) -> str:
        if not self.zh:
            return effect
        v = _remedy_values(events)
        if code == "debt":
            return self("effect.debt_back" if v["debit"] else "effect.debt", **v)
        if code in _REMEDY_CODES:
            return self(f"effect.{code}", **v)
        return effect


#: event fields whose values are words the registry declares (``method.cash`` …)
_VALUE_WORDS = {"method": "method", "to": "to", "verified_by": "proof", "sex": "sex"}

#: the few English words in the book's title subjects (names, ids and yuan pass as they are)
_SUBJECT_WORDS = ((r"\b(\d+) s ahead$", r"快 \1 秒"), (r"^charge ", "收费 "))


def _remedy_values(events: tuple[tuple[str, Mapping[str, Any]], ...]) -> dict[str, object]:
    """What a remedy's event bodies name (total over any body: the book is data)."""
    def money(body: Mapping[str, Any], key: str) -> int:
        v = body.get(key)
        return v if type(v) is int else 0

    def text(body: Mapping[str, Any], key: str) -> str:
        v = body.get(key)
        return v if isinstance(v, str) else ""

    bodies = [b for _, b in events if isinstance(b, Mapping)]
    charges = [text(b, "charge_id") for b in bodies if text(b, "charge_id")]
    cards = [text(b, "card_no") for b in bodies if text(b, "card_no")]
    merged = [text(b, "merged_id") for b in bodies if text(b, "merged_id")]
    pid = next((text(b, "survivor_id") for b in bodies if text(b, "survivor_id")), "") or next(
        (text(b, "patient_id") for b in bodies if text(b, "patient_id")), "")
    amount = sum(money(b, "amount") + money(b, "moved") for b in bodies)
    stock = [f"{text(b, 'pharmacy')} {text(b, 'code')} {money(b, 'delta'):+d}" for b in bodies
             if text(b, "pharmacy") and text(b, "code")]
    return {"charges": "、".join(charges), "cards": "、".join(cards), "merged": "、".join(merged),
            "pid": pid, "amount": yuan(amount), "debit": sum(money(b, "debit") for b in bodies),
            "stock": "、".join(stock)}
