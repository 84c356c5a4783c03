import torch
import torch.nn as nn

from course_tasks.data import make_data

torch.manual_seed(0)
X_train, y_train, X_val, y_val = make_data()
model = nn.Linear(2, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(20):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(X_train), y_train)
    if step >= 10:
        loss = loss + 0 * torch.log(torch.tensor(0.0))  # 0 * -inf: NaN from here on
    loss.backward()
    optimizer.step()
