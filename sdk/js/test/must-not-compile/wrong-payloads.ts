// Each line marked "error" must fail to compile, and no other line may: the payload types come from the contract.
import { createTracker } from "../../src/index.js";

const engage = createTracker({ endpoint: "http://127.0.0.1:1", writeKey: "wk", platform: "web" });

engage.events.lessonCompleted({ lesson_id: "l1", duration_seconds: 60 }, { course_id: "c1" });
engage.events.lessonCompleted({ lesson_id: "l1" }, { course_id: "c1" }); // error: duration_seconds is required
engage.events.lessonCompleted({ lesson_id: "l1", duration_seconds: "60" }, { course_id: "c1" }); // error: a string
engage.events.lessonStarted({ lesson_id: "l1" }); // error: course_id is required for lesson events
engage.events.contentViewed({ content_id: "v1", content_format: "hologram" }); // error: not a ContentFormat
engage.events.login({ method: "sso", mood: "happy" }); // error: unknown field (the collector refuses it too)
engage.track("quiz_submitted", { quiz_id: "q", score: 1, max_score: 2 }, { course_id: "c" });
engage.track("quiz_submitted", { quiz_id: "q", score: 1 }, { course_id: "c" }); // error: max_score is required
engage.track("teleported", {}); // error: not an event type
engage.track("login", {});
engage.track("enrolled", {}); // error: course_id is required for enrolments
engage.track("notification_opened", { notification_id: "n", channel: "pigeon" }); // error: not a Channel
