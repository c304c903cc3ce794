from django.apps import AppConfig


class ProblemsConfig(AppConfig):
    name = "modules.problems"
    label = "problems"
    verbose_name = "Problems and known errors (tenant plane)"

    def ready(self) -> None:
        from modules.records.registry import RecordKind, kind_register

        kind_register(
            RecordKind(
                name="problem",
                label="Problem",
                prefix="PRB",
                selector="modules.problems.selectors.problem_get",
                console_path="problems/{number}/",
            )
        )
        kind_register(
            RecordKind(
                name="known_error",
                label="Known error",
                prefix="KE",
                selector="modules.problems.selectors.known_error_get",
                console_path="problems/known-errors/{number}/",
            )
        )
