"""swift-ext's ms-swift plugin file.

    swift rlhf --rlhf_type grpo --external_plugins "$(swift-ext plugin-path)" \
        --reward_funcs think_format exact_match:extract=last_number ...

It registers every swift-ext reward (and parametrised names used on the command line) into
``swift.rewards.orms`` and every swift-ext callback into ``swift.callbacks.callbacks_map``.
"""

from swift_ext.bridge import install

install()
