from grefine_kit.metrics import Metric, negative_optimisation


def test_negative_optimisation_respects_direction():
    assert negative_optimisation(0.5, 0.4)
    assert not negative_optimisation(0.5, 0.6)
    assert negative_optimisation(10.0, 12.0, higher_is_better=False)
    assert not negative_optimisation(0.5, 0.5)


def test_indicator_metric_wraps_a_plugin_indicator(with_plugins):
    from grefine_kit.registry import get_registry
    from grefine_kit.testing import sample_images

    metric = get_registry().create(
        "metric", "indicator-score", {"indicator": "brightness", "options": {"gamma": 1.0}}
    )
    assert isinstance(metric, Metric) and metric.higher_is_better and not metric.needs_prompt
    dark, bright = sample_images([(8, 8)])[0].point(lambda v: v // 4), sample_images([(8, 8)])[0]
    low, high = metric.compute([dark, bright])
    assert low < high
