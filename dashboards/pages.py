"""The admin pages' handlers: each gathers its panels (named queries and API reads, concurrently), each panel
failing alone, and renders a template. Actions call the worker API and come back with a flash message."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dashboards import charts
from dashboards.auth import form
from dashboards.data import LiveFeed, Panel, ServiceError, Services, Warehouse, guarded
from dashboards.model_health import ModelHealth
from dashboards.present import BadRequest, ListQuery, ago, pages, trend_words
from dashboards.session import Session
from models.registry import ModelRegistry
from schemas.interventions import InterventionType

FLASH = "engage_flash"
NAV = (
    ("overview", "/admin", "Overview"),
    ("at-risk", "/admin/at-risk", "At-risk students"),
    ("effectiveness", "/admin/effectiveness", "Interventions"),
    ("cohorts", "/admin/cohorts", "Cohorts"),
    ("predictions", "/admin/predictions", "Predictions"),
    ("experiments", "/admin/experiments", "Experiments"),
)


class AdminPages:
    def __init__(
        self,
        env: Environment,
        warehouse: Warehouse,
        services: Services,
        feed: LiveFeed,
        clock: Callable[[], datetime],
        experiments_path: Path | None,
        model_registry: Path,
    ) -> None:
        self.env, self.warehouse, self.services, self.feed, self.clock = env, warehouse, services, feed, clock
        self.experiments_path = experiments_path
        self.model_registry = model_registry
        self.health = ModelHealth(warehouse.connect, ModelRegistry(model_registry))

    # --- rendering -----------------------------------------------------------------------------------------------
    def render(
        self, request: Request, template: str, session: Session | None, status: int = 200, **ctx: Any
    ) -> Response:
        flash = unquote(request.cookies.get(FLASH, ""))
        html = self.env.get_template(template).render(
            nav=NAV, session=session, flash=flash, now=self.clock(), ago=ago, trend_words=trend_words, **ctx
        )
        answer = HTMLResponse(html, status_code=status)
        if flash:
            answer.delete_cookie(FLASH, path="/")
        return answer

    def problem(self, request: Request, session: Session | None, status: int, title: str, detail: str) -> Response:
        return self.render(request, "problem.html", session, status, active="", title=title, detail=detail)

    # --- overview ------------------------------------------------------------------------------------------------
    async def overview(self, request: Request, session: Session) -> Response:
        today = self.clock().date()
        snapshot, tiers = await asyncio.gather(
            self.feed.latest(),
            self.warehouse.panel(
                "tiers_over_time", {"from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()}
            ),
        )
        chart = charts.tiers_chart("tiers-chart", tiers.rows) if tiers.ok else None
        return self.render(
            request,
            "overview.html",
            session,
            active="overview",
            snap=snapshot,
            tiers=tiers,
            chart=chart,
            tier_order=charts.TIER_ORDER,
        )

    # --- at-risk list --------------------------------------------------------------------------------------------
    async def at_risk(self, request: Request, session: Session) -> Response:
        try:
            query = ListQuery.parse(request.query_params)
        except BadRequest as exc:
            return self.problem(request, session, 400, "The list cannot be shown", str(exc))
        listing, count, desk = await asyncio.gather(
            self.warehouse.panel("at_risk_page", query.page_params(self.clock()), panel="at-risk"),
            self.warehouse.panel("at_risk_count", query.filters(), panel="count"),
            guarded("desk", self.services.outreach_items),
        )
        total = int(count.rows[0]["students"]) if count.ok and count.rows else 0
        outreach: dict[str, dict[str, Any]] = {}
        for item in desk.rows:  # most urgent first: each student's first item is the one to open
            outreach.setdefault(str(item["user_id"]), item)
        return self.render(
            request,
            "at_risk.html",
            session,
            active="at-risk",
            q=query,
            listing=listing,
            count=count,
            total=total,
            pages=pages(total, query.size),
            desk=desk,
            outreach=outreach,
            tier_order=charts.TIER_ORDER,
            kinds=[t.value for t in InterventionType],
        )

    # --- one student ---------------------------------------------------------------------------------------------
    async def student(self, request: Request, session: Session) -> Response:
        user_id = request.path_params["user_id"]
        since = (self.clock().date() - timedelta(days=89)).isoformat()
        live, history, decisions = await asyncio.gather(
            guarded("engagement", self._engagement(user_id)),
            self.warehouse.panel("student_history", {"user": user_id, "from": since}),
            self.warehouse.panel("student_interventions", {"user": user_id}),
        )
        engagement = live.rows[0] if live.rows else None
        if live.ok and engagement is None and history.ok and not history.rows and decisions.ok and not decisions.rows:
            return self.problem(
                request,
                session,
                404,
                "Unknown student",
                f"Neither the engine nor the warehouse knows a student {user_id!r}.",
            )
        reach = [d["intervention_id"] for d in decisions.rows if d["intervention_type"] == "human_outreach"]
        desk = await guarded("desk", lambda: self._desk_items(reach))
        chart = charts.line_chart(
            "signal-history",
            f"Risk of {user_id} over the last 90 days",
            [str(r["day"])[5:] for r in history.rows],
            [
                charts.Series("7-day risk", [r["risk_7d"] for r in history.rows]),
                charts.Series("30-day risk", [r["risk_30d"] for r in history.rows]),
            ],
            y_label="risk (0-100)",
            y_max=100,
        )
        return self.render(
            request,
            "student.html",
            session,
            active="at-risk",
            user_id=user_id,
            live=live,
            engagement=engagement,
            history=history,
            decisions=decisions,
            chart=chart,
            desk=desk,
            outreach={i["intervention_id"]: i for i in desk.rows},
            kinds=[t.value for t in InterventionType],
        )

    def _engagement(self, user_id: str) -> Callable[[], Any]:
        async def read() -> list[dict[str, Any]]:
            found = await self.services.engagement(user_id)
            return [found] if found is not None else []

        return read

    async def _desk_items(self, ids: list[str]) -> list[dict[str, Any]]:
        found = await asyncio.gather(*(self.services.outreach_item(i) for i in ids[:20]))
        return [item for item in found if item is not None]

    async def outreach(self, request: Request, session: Session) -> Response:
        item_id = request.path_params["item_id"]
        desk = await guarded("desk", lambda: self._desk_items([item_id]))
        if desk.ok and not desk.rows:
            return self.problem(request, session, 404, "Unknown outreach item", f"The desk holds no item {item_id!r}.")
        return self.render(request, "outreach.html", session, active="at-risk", item_id=item_id, desk=desk)

    # --- actions -------------------------------------------------------------------------------------------------
    async def act(self, request: Request, session: Session) -> Response:
        user_id, action = request.path_params["user_id"], request.path_params["action"]
        if action not in ("recalculate", "intervene"):
            return self.problem(request, session, 404, "No such action", "A student can be recalculated or intervened.")
        fields = await form(request)
        back = fields.get("back", "")
        if not back.startswith("/admin"):  # only ever back to our own pages
            back = f"/admin/students/{quote(user_id, safe='')}"
        try:
            if action == "recalculate":
                done = await self.services.recalculate(user_id)
                update = done["risk_update"]
                message = (
                    f"Recalculated {user_id}: 7-day risk {update['risk_7d']:.1f} ({update['tier']}), "
                    f"scored at {update['scored_at']}; intervention: {done.get('intervention') or 'none'}."
                )
            else:
                kind = fields.get("intervention_type", "")
                if kind not in {t.value for t in InterventionType}:
                    raise ServiceError(f"choose an intervention type; {kind!r} is not one")
                done = await self.services.intervene(
                    user_id, kind, fields.get("reason") or f"triggered by {session.app_id}"
                )
                message = f"Triggered {kind} for {user_id} ({done['intervention']['intervention_id']})."
        except (ServiceError, KeyError, TypeError) as exc:
            message = f"Could not {action} {user_id}: {exc}"
        answer = RedirectResponse(back, status_code=303)
        answer.set_cookie(FLASH, quote(message[:600]), max_age=60, path="/", httponly=True, samesite="strict")
        return answer

    # --- reports -------------------------------------------------------------------------------------------------
    async def effectiveness(self, request: Request, session: Session) -> Response:
        uplift, funnel = await asyncio.gather(
            self.warehouse.panel("intervention_effectiveness"), self.warehouse.panel("delivery_funnel")
        )
        funnel_chart = {
            r["channel"]: charts.bar_chart(
                f"funnel-{r['channel']}",
                f"Delivery funnel, {r['channel']}",
                [(step, float(r[step])) for step in ("sent", "delivered", "opened", "clicked", "returned")],
            )
            for r in funnel.rows
        }
        return self.render(
            request,
            "effectiveness.html",
            session,
            active="effectiveness",
            uplift=uplift,
            funnel=funnel,
            funnel_chart=funnel_chart,
        )

    async def cohorts(self, request: Request, session: Session) -> Response:
        retention, growth = await asyncio.gather(
            self.warehouse.panel("weekly_cohort_retention"), self.warehouse.panel("engagement_growth")
        )
        triangle = charts.retention_table("retention-triangle", retention.rows) if retention.ok else None
        growth_chart = charts.line_chart(
            "growth-chart",
            "Daily, weekly and monthly active students",
            [str(r["day"])[5:] for r in growth.rows],
            [
                charts.Series(name, [r[key] for r in growth.rows])
                for key, name in (("dau", "DAU"), ("wau", "WAU"), ("mau", "MAU"))
            ],
            y_label="students",
        )
        return self.render(
            request,
            "cohorts.html",
            session,
            active="cohorts",
            retention=retention,
            triangle=triangle,
            growth=growth,
            growth_chart=growth_chart,
        )

    async def predictions(self, request: Request, session: Session) -> Response:
        accuracy, calibration, model = await asyncio.gather(
            self.warehouse.panel("prediction_accuracy"),
            self.warehouse.panel("prediction_calibration"),
            guarded("model", self._promoted_model),
        )
        measured = self.health.current()
        by_version, drift = self.health.rows()
        error = self.health.error
        return self.render(
            request,
            "predictions.html",
            session,
            active="predictions",
            accuracy=accuracy,
            calibration=calibration,
            model=model,
            measured_at=measured.at if measured is not None else None,
            by_version=Panel("by_version", by_version) if error is None else Panel("by_version", error=error),
            drift=Panel("drift", drift) if error is None else Panel("drift", error=error),
        )

    async def _promoted_model(self) -> list[dict[str, Any]]:
        entry = ModelRegistry(self.model_registry).promoted()
        if entry is None:
            return []
        shown = {k: v for k, v in entry.metadata.items() if isinstance(v, str | int | float) and k != "drift_reference"}
        metrics = entry.metadata.get("metrics")
        if isinstance(metrics, dict):
            shown.update({f"metrics.{k}": v for k, v in metrics.items() if isinstance(v, str | int | float)})
        return [{"version": entry.version, "metadata": json.dumps(shown, indent=1, sort_keys=True, default=str)}]

    async def experiments(self, request: Request, session: Session) -> Response:
        from analytics.experiments import GUARDRAILS, METRICS, readout
        from processors.experiments.config import DEFAULT_EXPERIMENTS_PATH, load_experiments

        try:
            config = load_experiments(self.experiments_path or DEFAULT_EXPERIMENTS_PATH)
        except Exception as exc:
            return self.problem(request, session, 500, "The experiments file cannot be read", str(exc))
        running = [e for e in config.experiments if e.status == "running"]

        async def one(experiment: Any) -> Panel:
            async def read() -> list[dict[str, Any]]:
                return [{"readout": await self.warehouse.call(lambda c: readout(c, experiment))}]

            return await guarded(experiment.key, read)

        panels = await asyncio.gather(*(one(e) for e in running))
        return self.render(
            request,
            "experiments.html",
            session,
            active="experiments",
            panels=list(zip(running, panels, strict=True)),
            metrics={**METRICS, **GUARDRAILS},
        )
