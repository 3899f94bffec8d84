"""``dehaze_lifecycle_node``: the dehazing node as a managed (lifecycle) node, for Nav2-style bring-up.

Same name (``dehaze_node``), parameters, topics and outputs as :class:`dcmpnet_ros.node.DehazeNode`; the work is
split over the lifecycle transitions (rclpy.lifecycle, Humble API):

* ``configure``: read the parameters, load the engine, warm it up at ``warmup_width`` x ``warmup_height`` and
  create the (lifecycle) publishers; a bad parameter or missing weights fails the transition with the reason;
* ``activate``: subscribe to the camera and start the worker; outputs flow;
* ``deactivate``: unsubscribe, stop the worker, return the accelerator's cached memory (the weights stay loaded,
  so activating again is immediate);
* ``cleanup`` / ``shutdown``: drop the engine and its accelerator memory.
"""
from __future__ import annotations

import sys
from typing import Any, Callable

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from dcmpnet_ros.node import DehazeRos, run_node
from dcmpnet_ros.params import NODE_NAME, NodeParams, ParameterError
from dcmpnet_ros.pipeline import StartupError, load_engine, release_accelerator_memory


class DehazeLifecycleNode(DehazeRos, LifecycleNode):
    """The managed dehazing node; it starts unconfigured (``ros2 lifecycle set /dehaze_node configure``)."""

    def __init__(self, dehazer_factory: Callable[[NodeParams], Any] = load_engine, **node_kwargs: Any):
        LifecycleNode.__init__(self, NODE_NAME, **node_kwargs)
        self._factory = dehazer_factory
        self._pub_image = self._pub_depth = self._pub_info = self._pub_haze = self._pub_diag = None
        self._subscriptions_: list = []
        try:
            self.params = self._declare_parameters()     # ParameterError names the bad parameter
        except BaseException:
            LifecycleNode.destroy_node(self)
            raise
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _destroy_lifecycle_publisher(self, publisher: Any) -> None:
        destroy = getattr(self, "destroy_lifecycle_publisher", None) or self.destroy_publisher
        destroy(publisher)

    # ---------------------------------------------------------------------------- transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._open(self._factory, self.create_lifecycle_publisher)
        except (StartupError, ParameterError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subscribe()
        self.get_logger().info(f"active: subscribed to {self.resolve_topic_name(self._input_topic)}")
        return super().on_activate(state)          # activates the lifecycle publishers

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unsubscribe()
        freed = release_accelerator_memory(self.pipeline.stats.device) if self.pipeline is not None else False
        self.get_logger().info("inactive: unsubscribed" + ("; CUDA cache released" if freed else ""))
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        if self.pipeline is None:
            return
        device = self.pipeline.stats.device          # recorded when the engine was built (configure)
        self._close(self._destroy_lifecycle_publisher)
        release_accelerator_memory(device)

    def destroy_node(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the lifecycle node until Ctrl-C or shutdown (it waits unconfigured for a lifecycle manager)."""
    return run_node(DehazeLifecycleNode, args)


if __name__ == "__main__":
    sys.exit(main())
